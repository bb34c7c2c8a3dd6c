//! Credentials as Bundler reads them from settings and URLs: percent-decoded, sent as HTTP Basic.

use base64::Engine as _;

/// The `Authorization` header for `user:password` or a bare token, decoded the way Bundler decodes them
/// (`CGI.unescape` of each part).
pub fn basic_auth(userinfo: &str) -> String {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    basic(&cgi_unescape(user), &cgi_unescape(password))
}

/// `Basic <base64 of user:password>`, for `Authorization` and `Proxy-Authorization`.
pub(super) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Ruby's `CGI.unescape`: `%XX` escapes and `+` for a space.
fn cgi_unescape(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_decodes_like_bundler() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(basic_auth("u:p"), enc("u:p"));
        assert_eq!(basic_auth("tok"), enc("tok:"));
        assert_eq!(basic_auth("u%40x:p%3A+q"), enc("u@x:p: q"));
        assert_eq!(basic_auth("u:a:b"), enc("u:a:b"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
