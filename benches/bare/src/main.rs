//! `bare-actix [PORT] JSON_FILE [WORKERS]`: serves the bytes of JSON_FILE for
//! `GET /api/v1/products/{id}` (any id), loaded once at start. The baseline for benches/run.

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, get, web};

#[get("/api/v1/products/{id}")]
async fn product(body: web::Data<&'static [u8]>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(*body.get_ref())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("bare-actix: {msg}\nusage: bare-actix [PORT] JSON_FILE [WORKERS]");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.get(1).map(|s| s.parse()) {
        None => 18081,
        Some(Ok(p)) => p,
        Some(Err(_)) => return usage("PORT must be a number"),
    };
    let Some(path) = args.get(2) else {
        return usage("missing JSON_FILE");
    };
    let workers = args
        .get(3)
        .cloned()
        .or_else(|| std::env::var("WORKERS").ok())
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return usage(&format!("cannot read {path}: {e}")),
    };
    // Validate once at start; requests never parse it.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return usage(&format!("{path} is not JSON: {e}"));
    }
    let body: &'static [u8] = Box::leak(bytes.into_boxed_slice());

    let result = actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(body))
                .service(product)
        })
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage(&format!("server failed: {e}")),
    }
}
