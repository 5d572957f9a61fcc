//! Handing the memory start-up freed back to the system.
//!
//! Start-up allocates far more than a serving process keeps: every worker builds its routes
//! together with their OpenAPI description (utoipa-actix-web collects it as services are
//! registered) and drops the description, the document is serialized once, migrations run.
//! glibc keeps what was freed in its per-thread arenas, so an idle server would stay at its
//! start-up peak (about 15 MiB private memory, of which some 9 MiB are free chunks).
//! [`release_after_start`] asks glibc for them back once the workers are up.

use std::time::Duration;

/// Trims the allocator shortly after start-up, and once more when late work (the first
/// relay turn, the jobs' first runs) has settled.
pub(crate) async fn release_after_start() {
    for wait in [Duration::from_millis(200), Duration::from_secs(3)] {
        tokio::time::sleep(wait).await;
        let released = tokio::task::spawn_blocking(release_free_memory)
            .await
            .unwrap_or(false);
        tracing::debug!(
            released,
            "returned the allocator's free memory to the system"
        );
    }
}

/// Asks glibc to return the free pages of every arena (`malloc_trim(0)`); whether any came
/// back. Elsewhere (musl, macOS) it does nothing: those allocators return memory themselves.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "malloc_trim is an FFI call")]
fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and holds glibc's own arena locks while it runs.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}
