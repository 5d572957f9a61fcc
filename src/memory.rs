//! Handing the memory start-up used back to the system.
//!
//! Start-up allocates far more than a serving process keeps: every worker builds its routes
//! together with their OpenAPI description (utoipa-actix-web collects it as services are
//! registered) and drops the description, the document is serialized once, migrations run.
//! glibc keeps what was freed in its per-thread arenas, so an idle server would stay at its
//! start-up peak (about 15 MiB private memory, of which some 9 MiB are free chunks).
//! [`release_after_start`] asks glibc for them back once the workers are up.
//!
//! Start-up also runs code that serving never runs again (configuration, migrations, every
//! worker's OpenAPI description, the Swagger UI set-up), and the kernel maps code in 64 KiB
//! runs around each page touched: after start-up 16 of the binary's 20 MiB of code were
//! resident. Once the server is up, those pages are handed back too (`MADV_PAGEOUT`); what
//! serving uses comes back, page by page, the first time it runs. Measured on the release
//! binary with two workers: 0.6 s after start 12–17 MiB resident (30.4 before), 13.7 after
//! the first request, 28 under the read benchmark's load (36.8 before).

use std::time::Duration;

/// Trims the allocator and hands back start-up's code pages shortly after start-up, then
/// trims once more when late work (the first relay turn, the jobs' first runs) has settled.
pub(crate) async fn release_after_start() {
    for (n, wait) in [Duration::from_millis(200), Duration::from_secs(3)]
        .into_iter()
        .enumerate()
    {
        tokio::time::sleep(wait).await;
        let (released, code) = tokio::task::spawn_blocking(move || {
            // Code only once: a server already under load would fault its hot pages back.
            (release_free_memory(), n == 0 && release_startup_code())
        })
        .await
        .unwrap_or((false, false));
        tracing::debug!(
            released,
            code,
            "returned the allocator's free memory (and start-up's code pages) to the system"
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

/// Hands back the resident pages of this executable's code and read-only data
/// (`MADV_PAGEOUT`, Linux 5.4 and later): clean file pages, which the kernel reads back from
/// the binary when they run again. Whether the kernel took every range; `false` elsewhere.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "madvise is an FFI call")]
fn release_startup_code() -> bool {
    let ranges = executable_ranges();
    !ranges.is_empty()
        && ranges.into_iter().all(|(start, end)| {
            // SAFETY: the range is a whole mapping of this process's own executable, read-only
            // (`r-xp`, `r--p`): paging it out changes no content, only where it lives.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) == 0
            }
        })
}

#[cfg(not(target_os = "linux"))]
fn release_startup_code() -> bool {
    false
}

/// The read-only mappings (`r-xp`, `r--p`) of the file this function's code was loaded from,
/// from `/proc/self/maps`.
#[cfg(target_os = "linux")]
fn executable_ranges() -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let here = executable_ranges as fn() -> Vec<(usize, usize)> as usize;
    let mappings: Vec<(usize, usize, &str, &str)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
                perms,
                path,
            ))
        })
        .collect();
    let Some(&(_, _, _, binary)) = mappings
        .iter()
        .find(|(start, end, _, _)| (*start..*end).contains(&here))
    else {
        return Vec::new();
    };
    mappings
        .iter()
        .filter(|(_, _, perms, path)| *path == binary && matches!(*perms, "r-xp" | "r--p"))
        .map(|&(start, end, _, _)| (start, end))
        .collect()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The hand-back finds this executable's code and the kernel takes it; the code still
    /// runs afterwards (it comes back from the file).
    #[test]
    fn startup_code_is_handed_back_and_still_runs() {
        let ranges = executable_ranges();
        let here = executable_ranges as fn() -> Vec<(usize, usize)> as usize;
        assert!(
            ranges
                .iter()
                .any(|(start, end)| (*start..*end).contains(&here)),
            "{ranges:x?} should hold {here:x}"
        );
        assert!(release_startup_code());
        assert_eq!(executable_ranges(), ranges);
    }
}
