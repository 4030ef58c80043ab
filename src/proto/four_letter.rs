//! Four-letter words: a connection whose first four bytes spell a known command instead
//! of a length prefix gets a text answer and is closed (`NIOServerCnxn.checkFourLetterWord`).

/// The commands we answer, in the order `FourLetterCommands` lists them.
pub const COMMANDS: [&str; 18] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "envi", "srst", "wchs", "wchc", "wchp", "dirs", "isro",
    "dump", "gtmk", "stmk", "hash",
];

/// The command named by a connection's first four bytes, if they name one.
pub fn parse(prefix: [u8; 4]) -> Option<&'static str> {
    COMMANDS.iter().copied().find(|command| command.as_bytes() == prefix)
}

/// Whether `4lw.commands.whitelist` allows `command`. ZooKeeper always allows `srvr`
/// unless the list is set explicitly; `*` allows all.
pub fn is_allowed(whitelist: &[String], command: &str) -> bool {
    whitelist.iter().any(|allowed| allowed == "*" || allowed == command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_words_parse_and_lengths_do_not() {
        assert_eq!(parse(*b"ruok"), Some("ruok"));
        assert_eq!(parse([0, 0, 0, 44]), None);
    }

    #[test]
    fn whitelist_star_allows_everything() {
        assert!(is_allowed(&["*".into()], "mntr"));
        assert!(is_allowed(&["srvr".into(), "ruok".into()], "ruok"));
        assert!(!is_allowed(&["srvr".into()], "mntr"));
    }
}
