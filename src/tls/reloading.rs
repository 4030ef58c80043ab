//! A TLS configuration that follows its files: when a certificate, key, trust store or
//! password file changes on disk, the next connection gets a configuration built from the
//! new files, and connections already open keep theirs. A change that does not load (a
//! file caught half-written, a key that does not match) is logged and the configuration
//! in use stays, so a bad deploy never takes the port down.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use super::settings::TlsSettings;

/// How often the files are looked at.
const FILE_POLL_MS: u64 = 1_000;

/// What a file looked like: a rename, a rewrite in place or a new size all change it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    length_bytes: u64,
    inode: u64,
}

fn stamps(files: &[PathBuf]) -> Vec<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|metadata| FileStamp {
                modified: metadata.modified().ok(),
                length_bytes: metadata.len(),
                inode: metadata.ino(),
            })
        })
        .collect()
}

pub struct Reloading<T> {
    /// What the configuration serves, for log lines.
    purpose: &'static str,
    settings: TlsSettings,
    build: fn(&TlsSettings) -> Result<T, String>,
    current: RwLock<Arc<T>>,
    /// The files' stamps when they were last tried, loaded or not: a change that failed
    /// is not retried (or logged again) until the files change once more.
    tried: Mutex<Vec<Option<FileStamp>>>,
}

impl<T> Reloading<T> {
    pub fn load(
        purpose: &'static str,
        settings: &TlsSettings,
        build: fn(&TlsSettings) -> Result<T, String>,
    ) -> Result<Reloading<T>, String> {
        let tried = stamps(&settings.files());
        let config = build(settings).map_err(|error| format!("{purpose} TLS: {error}"))?;
        Ok(Reloading {
            purpose,
            settings: settings.clone(),
            build,
            current: RwLock::new(Arc::new(config)),
            tried: Mutex::new(tried),
        })
    }

    /// The configuration a new connection uses.
    pub fn current(&self) -> Arc<T> {
        self.current.read().expect("never poisoned: no code panics holding it").clone()
    }

    /// Rebuilds the configuration if a file changed since the last try.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.settings.files());
        {
            let mut tried = self.tried.lock().expect("never poisoned");
            if *tried == now {
                return;
            }
            *tried = now;
        }
        match (self.build)(&self.settings) {
            Ok(config) => {
                *self.current.write().expect("never poisoned") = Arc::new(config);
                tracing::info!(purpose = self.purpose, "TLS certificates reloaded; new connections use them");
            }
            Err(error) => {
                tracing::error!(purpose = self.purpose, %error, "TLS files changed but do not load; still using the previous ones");
            }
        }
    }
}

/// Something whose files are polled.
pub trait Reload: Send + Sync {
    fn reload_if_changed(&self);
}

impl<T: Send + Sync> Reload for Reloading<T> {
    fn reload_if_changed(&self) {
        Reloading::reload_if_changed(self)
    }
}

/// Starts the thread that polls every configuration's files for as long as the process
/// runs (a thread, not a core's task: building a configuration reads files and checks
/// keys, which must not stall a core's clients).
pub fn watch(configurations: Vec<Arc<dyn Reload>>) -> Result<(), String> {
    if configurations.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(FILE_POLL_MS));
            for configuration in &configurations {
                configuration.reload_if_changed();
            }
        })
        .map(|_| ())
        .map_err(|error| format!("cannot start the TLS reload thread: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_build(settings: &TlsSettings) -> Result<String, String> {
        let path = settings.key_store.path.as_ref().expect("set by the test");
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
        if text.starts_with("bad") {
            return Err("does not load".into());
        }
        Ok(text)
    }

    #[test]
    fn a_changed_file_is_loaded_and_a_bad_one_keeps_the_previous_configuration() {
        let dir = std::env::temp_dir().join(format!("ringkeeper-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.pem");
        std::fs::write(&path, "first").unwrap();
        let mut settings = TlsSettings::default();
        settings.key_store.path = Some(path.clone());
        let reloading = Reloading::load("test", &settings, counting_build).unwrap();
        assert_eq!(*reloading.current(), "first");

        reloading.reload_if_changed();
        assert_eq!(*reloading.current(), "first", "unchanged files are not reloaded");

        std::fs::write(&path, "second, longer").unwrap();
        reloading.reload_if_changed();
        assert_eq!(*reloading.current(), "second, longer");

        std::fs::write(&path, "bad file of another length").unwrap();
        reloading.reload_if_changed();
        assert_eq!(*reloading.current(), "second, longer", "a file that does not load changes nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
