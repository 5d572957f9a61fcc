//! A broker of a test's own, to take away and bring back.

use anyhow::Context as _;

/// A `nats-server` with JetStream of a test's own, on a free port with its own store, so a
/// test can take the broker away and bring it back (same port, same store) without
/// disturbing the shared server. The binary is `TESSERA_TEST_NATS_SERVER`, else
/// `nats-server` on the `PATH`. Killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    ///
    /// # Errors
    /// No free port, no binary, or it does not come up within 10 s.
    pub fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = Self {
            port,
            store: tempfile::tempdir()?,
            child: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server: while frozen, connections stay
    /// open but nothing is answered, like a broker that hangs.
    ///
    /// # Errors
    /// The signal cannot be sent.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the server is not running")?;
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} failed");
        Ok(())
    }

    /// Starts the server again on the same port and store, and waits until it accepts
    /// connections.
    ///
    /// # Errors
    /// The binary cannot be run, or it does not come up within 10 s.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.kill();
        let bin =
            std::env::var("TESSERA_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = std::process::Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {bin}"))?;
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "nats-server did not come up on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.freeze(false);
        self.kill();
    }
}
