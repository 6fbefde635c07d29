//! Pages of a key-ordered listing and the opaque tokens that continue one, as
//! Kubernetes' `limit`/`continue`: a page ends after at most `size` items (or
//! before it would pass a byte budget), and the next page starts after the last
//! key sent, in the listing as it is then. No snapshot is kept, so items that come
//! or go between pages are seen or not, but none is sent twice and none that
//! stayed is skipped. Pure: the gRPC and REST adapters feed it and map its errors.

use std::fmt;

/// The most items one page holds, whatever was asked.
pub const MAX_PAGE_SIZE: usize = 5000;
/// Nodes per page when the request says 0 (or nothing).
pub const DEFAULT_NODE_PAGE: usize = 500;
/// Pods per page when the request says 0 (or nothing).
pub const DEFAULT_POD_PAGE: usize = 1000;
/// Longest token accepted; ours stay far below it (the parts of one key, hex-encoded).
pub const MAX_TOKEN_CHARS: usize = 8192;

/// The token format; a token of another version is refused, not guessed at.
const VERSION: u8 = 1;

/// The key items are ordered by, compared part by part: a node's name; a pod's
/// node, namespace, name, uid and cgroup path.
pub type Key = Vec<String>;

/// Which listing a token continues: a node token cannot continue a pod listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Nodes,
    Pods,
}

impl Listing {
    fn tag(self) -> u8 {
        match self {
            Self::Nodes => b'n',
            Self::Pods => b'p',
        }
    }

    /// How many parts this listing's keys have.
    pub fn key_parts(self) -> usize {
        match self {
            Self::Nodes => 1,
            Self::Pods => 5,
        }
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nodes => "nodes",
            Self::Pods => "pods",
        })
    }
}

/// The items of one page, and the key to continue after when more remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last item's key when the listing goes on; `None` on the last page.
    pub next: Option<Key>,
}

/// Why a page could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// One item alone is over the budget: no page size helps.
    #[error("{} alone is {bytes} bytes, over the {budget}-byte limit", key.join("/"))]
    ItemTooLarge {
        key: Key,
        bytes: usize,
        budget: usize,
    },
}

/// Why a token was refused; the adapters name the field or parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {chars} characters long; at most {MAX_TOKEN_CHARS} are accepted")]
    TooLong { chars: usize },
    #[error("token is not a token this server issued (not hexadecimal)")]
    NotHex,
    #[error("token is not a token this server issued (version {0})")]
    Version(u8),
    #[error("token continues a listing of {found}, not of {expected}")]
    WrongListing { expected: Listing, found: String },
    #[error("token is not a token this server issued (truncated)")]
    Truncated,
    #[error("token is not a token this server issued (a key is not UTF-8)")]
    NotUtf8,
    #[error("token has a key of {found} parts; a key of {expected} has {parts}", parts = expected.key_parts())]
    KeyParts { expected: Listing, found: usize },
}

/// The page size to use for `requested` (0: `default`), capped at [`MAX_PAGE_SIZE`].
pub fn page_size(requested: u64, default: usize) -> usize {
    if requested == 0 {
        return default;
    }
    usize::try_from(requested).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))
}

/// One page of `items`, which must come in ascending key order: those after
/// `after`, at most `size` of them (at least one), stopping before the total of
/// `bytes_of` would pass `budget`. A first item that alone passes the budget is
/// an error rather than a page that never advances.
pub fn page<T>(
    items: impl IntoIterator<Item = (Key, T)>,
    after: Option<&Key>,
    size: usize,
    budget: usize,
    bytes_of: impl Fn(&T) -> usize,
) -> Result<Page<T>, PageError> {
    let size = size.max(1);
    let mut rest = items
        .into_iter()
        .skip_while(|(key, _)| after.is_some_and(|after| key <= after));
    let mut out = Vec::new();
    let mut last: Option<Key> = None;
    let mut used = 0usize;
    for (key, item) in rest.by_ref() {
        let bytes = bytes_of(&item);
        if used + bytes > budget {
            if out.is_empty() {
                return Err(PageError::ItemTooLarge { key, bytes, budget });
            }
            // This item starts the next page.
            return Ok(Page {
                items: out,
                next: last,
            });
        }
        used += bytes;
        out.push(item);
        last = Some(key);
        if out.len() == size {
            break;
        }
    }
    let more = rest.next().is_some();
    Ok(Page {
        items: out,
        next: last.filter(|_| more),
    })
}

/// The token that continues `listing` after `key`.
pub fn encode_token(listing: Listing, key: &[String]) -> String {
    let mut bytes = vec![VERSION, listing.tag()];
    for part in key {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&part.as_bytes()[..len as usize]);
    }
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The key a token of `listing` continues after; an empty token is the first page.
pub fn decode_token(listing: Listing, token: &str) -> Result<Option<Key>, TokenError> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::TooLong { chars: token.len() });
    }
    let bytes = unhex(token)?;
    let (&version, rest) = bytes.split_first().ok_or(TokenError::Truncated)?;
    if version != VERSION {
        return Err(TokenError::Version(version));
    }
    let (&tag, mut rest) = rest.split_first().ok_or(TokenError::Truncated)?;
    if tag != listing.tag() {
        let found = [Listing::Nodes, Listing::Pods]
            .into_iter()
            .find(|l| l.tag() == tag)
            .map_or_else(|| "something else".to_owned(), |l| l.to_string());
        return Err(TokenError::WrongListing {
            expected: listing,
            found,
        });
    }
    let mut key = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or(TokenError::Truncated)?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(TokenError::Truncated);
        }
        let (part, tail) = tail.split_at(len);
        key.push(String::from_utf8(part.to_vec()).map_err(|_| TokenError::NotUtf8)?);
        rest = tail;
    }
    if key.len() != listing.key_parts() {
        return Err(TokenError::KeyParts {
            expected: listing,
            found: key.len(),
        });
    }
    Ok(Some(key))
}

fn unhex(text: &str) -> Result<Vec<u8>, TokenError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TokenError::NotHex),
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(TokenError::NotHex);
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Ok(digit(pair[0])? * 16 + digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> Key {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    /// Items `name` of `bytes` bytes each, keyed by name.
    fn items(names: &[&str]) -> Vec<(Key, String)> {
        names.iter().map(|n| (key(&[n]), (*n).to_owned())).collect()
    }

    fn all_pages(names: &[&str], size: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after: Option<Key> = None;
        loop {
            let page = page(items(names), after.as_ref(), size, usize::MAX, |_| 1).unwrap();
            pages.push(page.items);
            assert!(pages.len() <= names.len() + 1, "paging does not advance");
            match page.next {
                Some(next) => after = Some(next),
                None => return pages,
            }
        }
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(page_size(0, 500), 500);
        assert_eq!(page_size(1, 500), 1);
        assert_eq!(page_size(4999, 500), 4999);
        assert_eq!(page_size(5000, 500), 5000);
        assert_eq!(page_size(5001, 500), MAX_PAGE_SIZE);
        assert_eq!(page_size(u64::MAX, 500), MAX_PAGE_SIZE);
    }

    #[test]
    fn an_empty_listing_is_one_empty_last_page() {
        let page = page(Vec::<(Key, ())>::new(), None, 10, 100, |_| 1).unwrap();
        assert_eq!(
            page,
            Page {
                items: vec![],
                next: None
            }
        );
    }

    #[test]
    fn pages_cover_every_item_once_at_exact_and_ragged_boundaries() {
        let names = ["a", "b", "c", "d", "e", "f"];
        assert_eq!(
            all_pages(&names, 3),
            [vec!["a", "b", "c"], vec!["d", "e", "f"]],
            "exact boundary: no empty trailing page"
        );
        assert_eq!(
            all_pages(&names, 4),
            [vec!["a", "b", "c", "d"], vec!["e", "f"]]
        );
        assert_eq!(all_pages(&names, 6), [names.to_vec()]);
        assert_eq!(all_pages(&names, 7), [names.to_vec()]);
        assert_eq!(all_pages(&names, 1).len(), 6);
    }

    #[test]
    fn a_zero_size_still_advances() {
        assert_eq!(all_pages(&["a", "b"], 0), [vec!["a"], vec!["b"]]);
    }

    #[test]
    fn the_next_key_is_the_last_item_sent() {
        let p = page(items(&["a", "b", "c"]), None, 2, usize::MAX, |_| 1).unwrap();
        assert_eq!(p.next, Some(key(&["b"])));
        let p = page(
            items(&["a", "b", "c"]),
            Some(&key(&["a"])),
            2,
            usize::MAX,
            |_| 1,
        )
        .unwrap();
        assert_eq!(
            p,
            Page {
                items: vec!["b".into(), "c".into()],
                next: None
            }
        );
    }

    #[test]
    fn items_that_come_and_go_between_pages_are_never_sent_twice() {
        let first = page(items(&["b", "d", "f"]), None, 2, usize::MAX, |_| 1).unwrap();
        assert_eq!(first.items, ["b", "d"]);
        let after = first.next.unwrap();
        // "d" (the last key sent) went away, "a" and "c" came before it, "e" after.
        let second = page(
            items(&["a", "b", "c", "e", "f"]),
            Some(&after),
            2,
            usize::MAX,
            |_| 1,
        )
        .unwrap();
        assert_eq!(
            second,
            Page {
                items: vec!["e".into(), "f".into()],
                next: None
            }
        );
    }

    #[test]
    fn a_page_stops_before_passing_the_budget() {
        let sizes = |s: &String| s.len();
        let list = || items(&["aa", "bbb", "cc", "d"]);
        // 2 + 3 = 5 fits exactly; "cc" would make 7.
        let p = page(list(), None, 10, 5, sizes).unwrap();
        assert_eq!(
            p,
            Page {
                items: vec!["aa".into(), "bbb".into()],
                next: Some(key(&["bbb"]))
            }
        );
        let p = page(list(), p.next.as_ref(), 10, 5, sizes).unwrap();
        assert_eq!(
            p,
            Page {
                items: vec!["cc".into(), "d".into()],
                next: None
            }
        );
        // One byte short of the first two.
        let p = page(list(), None, 10, 4, sizes).unwrap();
        assert_eq!(p.items, ["aa"]);
        assert_eq!(p.next, Some(key(&["aa"])));
    }

    #[test]
    fn an_item_over_the_budget_alone_is_an_error_naming_it() {
        let err = page(items(&["aa", "bbbb"]), Some(&key(&["aa"])), 10, 3, |s| {
            s.len()
        })
        .unwrap_err();
        assert_eq!(
            err,
            PageError::ItemTooLarge {
                key: key(&["bbbb"]),
                bytes: 4,
                budget: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "bbbb alone is 4 bytes, over the 3-byte limit"
        );
        // Exactly the budget is fine.
        let p = page(items(&["bbbb"]), None, 10, 4, |s| s.len()).unwrap();
        assert_eq!(p.items, ["bbbb"]);
    }

    #[test]
    fn tokens_round_trip_any_key() {
        for (listing, k) in [
            (Listing::Nodes, key(&["gpu-node-1"])),
            (Listing::Nodes, key(&[""])),
            (
                Listing::Pods,
                key(&["n/1", "ml", "trainer-0", "u-1", "/kubepods.slice/x"]),
            ),
            (Listing::Pods, key(&["é", "", "", "", "\u{0}"])),
        ] {
            let token = encode_token(listing, &k);
            assert!(token.bytes().all(|b| HEX.contains(&b)), "{token}");
            assert_eq!(decode_token(listing, &token), Ok(Some(k)));
        }
        assert_eq!(encode_token(Listing::Nodes, &key(&["a"])), "016e0000000161");
        assert_eq!(encode_token(Listing::Pods, &[]), "0170");
    }

    #[test]
    fn an_empty_token_is_the_first_page() {
        assert_eq!(decode_token(Listing::Pods, ""), Ok(None));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let nodes = |t: &str| decode_token(Listing::Nodes, t);
        assert_eq!(nodes("xyz!"), Err(TokenError::NotHex));
        assert_eq!(nodes("016e0"), Err(TokenError::NotHex), "odd length");
        assert_eq!(
            nodes("016E0000000161"),
            Err(TokenError::NotHex),
            "our tokens are lower case"
        );
        assert_eq!(nodes("/0"), Err(TokenError::NotHex));
        assert_eq!(nodes(":0"), Err(TokenError::NotHex));
        assert_eq!(nodes("g0"), Err(TokenError::NotHex));
        assert_eq!(nodes("`0"), Err(TokenError::NotHex));
        assert_eq!(nodes("01"), Err(TokenError::Truncated));
        assert_eq!(nodes("026e0000000161"), Err(TokenError::Version(2)));
        assert_eq!(
            nodes("016e000000"),
            Err(TokenError::Truncated),
            "short length"
        );
        assert_eq!(
            nodes("016e0000000261"),
            Err(TokenError::Truncated),
            "short part"
        );
        assert_eq!(nodes("016e00000001ff"), Err(TokenError::NotUtf8));
        assert_eq!(
            nodes("016e"),
            Err(TokenError::KeyParts {
                expected: Listing::Nodes,
                found: 0
            })
        );
        assert_eq!(
            nodes("016e00000001610000000162"),
            Err(TokenError::KeyParts {
                expected: Listing::Nodes,
                found: 2
            })
        );
        let pod_token = encode_token(Listing::Pods, &key(&["n", "ns", "p", "u", "c"]));
        let err = nodes(&pod_token).unwrap_err();
        assert_eq!(
            err,
            TokenError::WrongListing {
                expected: Listing::Nodes,
                found: "pods".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "token continues a listing of pods, not of nodes"
        );
        assert_eq!(
            decode_token(Listing::Pods, "016e0000000161")
                .unwrap_err()
                .to_string(),
            "token continues a listing of nodes, not of pods"
        );
        assert_eq!(
            nodes("0178"),
            Err(TokenError::WrongListing {
                expected: Listing::Nodes,
                found: "something else".into()
            })
        );
        assert_eq!(
            decode_token(Listing::Pods, "0170").unwrap_err().to_string(),
            "token has a key of 0 parts; a key of pods has 5"
        );
    }

    #[test]
    fn an_overlong_token_is_refused_before_decoding() {
        let long = "0".repeat(MAX_TOKEN_CHARS + 1);
        assert_eq!(
            decode_token(Listing::Nodes, &long),
            Err(TokenError::TooLong {
                chars: MAX_TOKEN_CHARS + 1
            })
        );
        // At the limit it is decoded (and found wrong for another reason).
        let at_limit = format!("016e{}", "0".repeat(MAX_TOKEN_CHARS - 4));
        assert_eq!(
            decode_token(Listing::Nodes, &at_limit),
            Err(TokenError::Truncated)
        );
    }
}
