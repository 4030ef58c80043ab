//! The ensemble's hard state beside the log: the highest epoch this member has accepted
//! and whom it voted for in it (ZooKeeper keeps `acceptedEpoch` and `currentEpoch` files
//! for the same reason). Written to a temporary name, synced and renamed, so a crash
//! leaves the old state or the new one, never a torn one.
//!
//! ```text
//! ringkeeper.epoch:  "<epoch> <vote or -> <crc32c of the text before it, hex>\n"
//! ```

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::consensus::core::HardState;

const FILE_NAME: &str = "ringkeeper.epoch";

/// The state written last, or the initial one if none was ever written.
pub fn read(dir: &Path) -> Result<HardState, String> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    parse(&text).ok_or_else(|| format!("{} is damaged: {text:?}; refusing to start", path.display()))
}

fn parse(text: &str) -> Option<HardState> {
    let (body, crc) = text.trim_end().rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
        return None;
    }
    let (epoch, vote) = body.split_once(' ')?;
    let vote = if vote == "-" { None } else { Some(vote.parse().ok()?) };
    Some(HardState { epoch: epoch.parse().ok()?, vote })
}

fn format(state: &HardState) -> String {
    let vote = state.vote.map_or("-".to_owned(), |vote| vote.to_string());
    let body = format!("{} {vote}", state.epoch);
    format!("{body} {:08x}\n", crc32c::crc32c(body.as_bytes()))
}

/// Makes `state` durable before returning.
pub fn write(dir: &Path, state: &HardState) -> std::io::Result<()> {
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(format(state).as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(FILE_NAME))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hard_state_reads_back_and_damage_is_refused() {
        let state = HardState { epoch: 7, vote: Some(3) };
        assert_eq!(parse(&format(&state)), Some(state));
        let none = HardState { epoch: 2, vote: None };
        assert_eq!(parse(&format(&none)), Some(none));
        assert_eq!(parse(&format(&state).replace('7', "8")), None);
    }
}
