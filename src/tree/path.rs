//! Znode path rules, as `org.apache.zookeeper.common.PathUtils.validatePath` applies them.

/// Checks a path the way ZooKeeper does. A sequential create is checked with a digit
/// appended, as ZooKeeper does, because the server appends the counter.
pub fn validate_path(path: &str, is_sequential: bool) -> Result<(), &'static str> {
    if is_sequential {
        return validate_exact(&format!("{path}1"));
    }
    validate_exact(path)
}

fn validate_exact(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("Path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character");
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err("empty node name specified");
        }
        if segment == "." || segment == ".." {
            return Err("relative paths not allowed");
        }
    }
    if path.chars().any(is_invalid_char) {
        return Err("invalid character");
    }
    Ok(())
}

/// Java checks UTF-16 units: control characters, the C1 range, surrogates and the private
/// use area (U+D800..U+F8FF), and U+FFF0..U+FFFF. A character beyond the BMP is a
/// surrogate pair in Java, so it is invalid too.
fn is_invalid_char(c: char) -> bool {
    let code = c as u32;
    code == 0
        || (0x01..=0x1f).contains(&code)
        || (0x7f..=0x9f).contains(&code)
        || (0xd800..=0xf8ff).contains(&code)
        || (0xfff0..=0xffff).contains(&code)
        || code > 0xffff
}

/// Splits a valid path into parent and last name: `/a/b` is (`/a`, `b`), `/a` is (`/`, `a`).
/// The root has no parent.
pub fn parent_and_name(path: &str) -> Option<(&str, &str)> {
    if path == "/" {
        return None;
    }
    let slash = path.rfind('/')?;
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + name.len());
    path.push_str(parent);
    if parent != "/" {
        path.push('/');
    }
    path.push_str(name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_are_absolute_without_empty_or_relative_names() {
        assert!(validate_path("/", false).is_ok());
        assert!(validate_path("/a/b-c_d.e", false).is_ok());
        assert!(validate_path("/a/..b", false).is_ok());
        assert!(validate_path("a", false).is_err());
        assert!(validate_path("", false).is_err());
        assert!(validate_path("/a/", false).is_err());
        assert!(validate_path("/a//b", false).is_err());
        assert!(validate_path("/a/.", false).is_err());
        assert!(validate_path("/a/../b", false).is_err());
        assert!(validate_path("/a\u{0}", false).is_err());
        assert!(validate_path("/a\u{1}", false).is_err());
        assert!(validate_path("/😀", false).is_err());
        assert!(validate_path("/é", false).is_ok());
    }

    #[test]
    fn a_sequential_path_may_end_with_a_slash() {
        assert!(validate_path("/a/", true).is_ok());
        assert!(validate_path("/a//", true).is_err());
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent_and_name("/a"), Some(("/", "a")));
        assert_eq!(parent_and_name("/a/b"), Some(("/a", "b")));
        assert_eq!(parent_and_name("/"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
