//! Kubernetes label selectors (`app=web,tier!=db,env in (a,b),!canary`), parsed once
//! and matched against a pod's labels. Pure: the APIs hand in the text.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// Every requirement must hold (an empty selector matches everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub reason: &'static str,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label selector {:?}: {}", self.selector, self.reason)
    }
}

impl std::error::Error for SelectorError {}

/// Longer selectors are refused (they come from the network).
pub const MAX_SELECTOR_BYTES: usize = 4096;

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |reason| SelectorError {
            selector: text.to_owned(),
            reason,
        };
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(error("longer than 4096 bytes"));
        }
        let mut requirements = Vec::new();
        for term in split_terms(text).map_err(error)? {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(error("an empty requirement"));
            }
            requirements.push(requirement(term).map_err(error)?);
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` (key, value pairs) satisfy every requirement.
    pub fn matches<'a>(
        &self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> bool {
        let get = |key: &str| {
            labels
                .clone()
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, &'static str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("a ')' without its '('");
                }
            }
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' without its ')'");
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn requirement(term: &str) -> Result<Requirement, &'static str> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key)?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = term.split_once(op) {
            return Ok(make(key_of(key)?, value_of(value)?));
        }
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim_start();
        let (notin, list) = if let Some(list) = rest.strip_prefix("notin") {
            (true, list)
        } else if let Some(list) = rest.strip_prefix("in") {
            (false, list)
        } else {
            return Err("an operator other than =, ==, !=, in, notin");
        };
        let list = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or("a value list not in parentheses")?;
        let values = list
            .split(',')
            .map(value_of)
            .collect::<Result<Vec<_>, _>>()?;
        let key = key_of(key)?;
        return Ok(if notin {
            Requirement::NotIn(key, values)
        } else {
            Requirement::In(key, values)
        });
    }
    Ok(Requirement::Exists(key_of(term)?))
}

/// A label key: an optional DNS prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9._-]`.
fn key_of(key: &str) -> Result<String, &'static str> {
    let key = key.trim();
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    if name.is_empty() || name.len() > 63 || key.len() > 317 {
        return Err("a label key that is empty or too long");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    {
        return Err("a label key with a character keys cannot have");
    }
    Ok(key.to_owned())
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, possibly empty.
fn value_of(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    if value.len() > 63 {
        return Err("a label value longer than 63 characters");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("a label value with a character values cannot have");
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: [(&str, &str); 3] = [("app", "web"), ("tier", "front"), ("team/owner", "ml")];

    fn matches(selector: &str) -> bool {
        LabelSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(LABELS)
    }

    #[test]
    fn each_operator_matches_as_kubernetes_defines_it() {
        for (selector, expected) in [
            ("", true),
            ("  ", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web,db)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("team/owner=ml", true),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("app in (web,db),!canary", true),
        ] {
            assert_eq!(matches(selector), expected, "{selector:?}");
        }
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (selector, reason) in [
            ("app=web,", "an empty requirement"),
            (",app", "an empty requirement"),
            ("app in (a", "a '(' without its ')'"),
            ("app in a)", "a ')' without its '('"),
            ("app in a", "a value list not in parentheses"),
            ("app gt 3", "an operator other than =, ==, !=, in, notin"),
            ("=web", "a label key that is empty or too long"),
            ("a b=c", "a label key with a character keys cannot have"),
            (
                "app=w b",
                "a label value with a character values cannot have",
            ),
            ("!", "a label key that is empty or too long"),
        ] {
            let err = LabelSelector::parse(selector).unwrap_err();
            assert_eq!(err.reason, reason, "{selector:?}");
            assert_eq!(err.selector, selector);
        }
        let long_value = format!("app={}", "v".repeat(64));
        assert_eq!(
            LabelSelector::parse(&long_value).unwrap_err().reason,
            "a label value longer than 63 characters"
        );
        assert!(LabelSelector::parse(&format!("app={}", "v".repeat(63))).is_ok());
        let long_name = "k".repeat(64);
        assert!(LabelSelector::parse(&long_name).is_err());
        assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
        // Keys: a 253-byte prefix, '/', a 63-byte name is the longest there is.
        let longest = format!("{}/{}", "p".repeat(253), "n".repeat(63));
        assert!(LabelSelector::parse(&longest).is_ok());
        assert_eq!(
            LabelSelector::parse(&format!("p{longest}"))
                .unwrap_err()
                .reason,
            "a label key that is empty or too long"
        );
        // Exactly 4096 bytes is accepted.
        let terms: Vec<String> = (0..63)
            .map(|_| "k".repeat(63))
            .chain(std::iter::once(format!("a/{}", "n".repeat(62))))
            .collect();
        let at_limit = terms.join(",");
        assert_eq!(at_limit.len(), MAX_SELECTOR_BYTES);
        assert!(LabelSelector::parse(&at_limit).is_ok());
        let huge = "a,".repeat(3000);
        assert_eq!(
            LabelSelector::parse(&huge).unwrap_err().to_string(),
            format!("label selector {huge:?}: longer than 4096 bytes")
        );
    }
}
