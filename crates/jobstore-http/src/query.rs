//! Query strings, parsed once for every API: decoded pairs, single and repeated parameters,
//! integers in a range, page sizes with the default, maximum and overflow each API picks, whitelisted choices (sort
//! fields, directions, states) and the refusal of unknown parameters, naming the known ones.
//! Every refusal is an [`ErrorKind::InvalidQuery`] that an API renders in its own shape.

use std::collections::BTreeMap;

use jobstore::Direction;

use crate::fault::{ApiError, ErrorKind};
use crate::router::percent_decode;

/// The sort directions as every API spells them (an API that takes other cases lowercases
/// first).
pub(crate) const DIRECTIONS: [(&str, Direction); 2] =
    [("asc", Direction::Asc), ("desc", Direction::Desc)];

/// What a page size past the maximum gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverMax {
    /// Refused (400).
    Refuse,
    /// Answered with the maximum.
    Clamp,
}

/// A parsed query string. Each parameter an API reads is remembered, so that
/// [`Query::finish`] refuses the others and names the known ones.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
    known: Vec<&'static str>,
    blank_is_absent: bool,
}

/// A refusal of a query parameter.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidQuery, message)
}

impl Query {
    /// Parses `raw` (`+` is a space).
    ///
    /// # Errors
    /// A malformed escape or text that is not UTF-8.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((
                    percent_decode(&key.replace('+', " "))?,
                    percent_decode(&value.replace('+', " "))?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("malformed query string"))?;
        Ok(Query {
            pairs,
            ..Query::default()
        })
    }

    /// Treats `name=` (an empty value) as if the parameter were absent.
    pub(crate) fn blank_is_absent(mut self) -> Query {
        self.blank_is_absent = true;
        self
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&mut self, name: &'static str) -> Vec<String> {
        self.known.push(name);
        let blank_is_absent = self.blank_is_absent;
        self.pairs
            .iter()
            .filter(|(key, value)| key == name && !(blank_is_absent && value.trim().is_empty()))
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Every value of `name`, repeated or comma-separated, trimmed, without empty items.
    pub(crate) fn list(&mut self, name: &'static str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The one value of `name`.
    ///
    /// # Errors
    /// The parameter given more than once.
    pub(crate) fn one(&mut self, name: &'static str) -> Result<Option<String>, ApiError> {
        let mut values = self.all(name);
        if values.len() > 1 {
            return Err(invalid(format!("{name}: given more than once")));
        }
        Ok(values.pop())
    }

    /// The one value of `name` as an integer within `min..=max`.
    ///
    /// # Errors
    /// Not an integer, out of range, or given twice.
    pub(crate) fn int(
        &mut self,
        name: &'static str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.one(name)? else {
            return Ok(None);
        };
        match value.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(format!(
                "{name}: must be an integer from {min} to {max}, got `{value}`"
            ))),
        }
    }

    /// The page size in `name`: `default` when absent, at most `max`, a larger value as
    /// `over_max` says.
    ///
    /// # Errors
    /// Not a positive integer, or past the maximum when `over_max` refuses it.
    pub(crate) fn page_size(
        &mut self,
        name: &'static str,
        default: u32,
        max: u32,
        over_max: OverMax,
    ) -> Result<u32, ApiError> {
        let Some(value) = self.one(name)? else {
            return Ok(default);
        };
        let text = value.trim();
        let refuse = || {
            let most = match over_max {
                OverMax::Refuse => format!("from 1 to {max}"),
                OverMax::Clamp => format!("of at least 1 (at most {max} are answered)"),
            };
            invalid(format!("{name}: must be an integer {most}, got `{value}`"))
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        // All digits: a number too large for u64 is only "larger than the maximum".
        let size = text.parse::<u64>().unwrap_or(u64::MAX);
        match over_max {
            _ if size == 0 => Err(refuse()),
            OverMax::Refuse if size > u64::from(max) => Err(refuse()),
            _ => Ok(u32::try_from(size).unwrap_or(u32::MAX).min(max)),
        }
    }

    /// The one value of `name`, chosen from `choices` (exact match).
    ///
    /// # Errors
    /// A value not among the choices (the message lists them), or given twice.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        name: &'static str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ApiError> {
        let Some(value) = self.one(name)? else {
            return Ok(None);
        };
        choose(name, &value, choices).map(Some)
    }

    /// Refuses every parameter no one asked for, naming the known ones.
    ///
    /// # Errors
    /// The first unknown parameter.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self
            .pairs
            .iter()
            .find(|(key, _)| !self.known.contains(&key.as_str()))
        {
            Some((unknown, _)) => Err(invalid(format!(
                "unknown query parameter `{unknown}`; known: {}",
                self.known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// The values of `items` in order, each once (a parameter's values, as read).
///
/// # Errors
/// The first item that is an error.
pub(crate) fn distinct<T: PartialEq>(
    items: impl IntoIterator<Item = Result<T, ApiError>>,
) -> Result<Vec<T>, ApiError> {
    let mut kept = Vec::new();
    for item in items {
        let item = item?;
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    Ok(kept)
}

/// `value` of parameter `name` chosen from `choices`.
///
/// # Errors
/// A value not among the choices; the message lists them.
pub(crate) fn choose<T: Copy>(
    name: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, ApiError> {
    choices
        .iter()
        .find(|(text, _)| *text == value)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| {
            let valid: Vec<&str> = choices.iter().map(|(text, _)| *text).collect();
            invalid(format!(
                "{name}: unknown value `{value}`; valid: {}",
                valid.join(", ")
            ))
        })
}

/// A sort parameter's choices: the field named `field` among `fields` and the direction named
/// `direction` (`asc` or `desc`), descending when none is named; refused under the names
/// `{name}` and `{name} direction`. How the two are written in one value is the API's.
///
/// # Errors
/// A field or direction not among the choices; the message lists them.
pub(crate) fn sort<T: Copy>(
    name: &str,
    field: &str,
    direction: Option<&str>,
    fields: &[(&str, T)],
) -> Result<(T, Direction), ApiError> {
    let field = choose(name, field, fields)?;
    let direction = match direction {
        Some(direction) => choose(&format!("{name} direction"), direction, &DIRECTIONS)?,
        None => Direction::Desc,
    };
    Ok((field, direction))
}

/// The text of `choice` in `choices` (the first, where several name it; `""` where none
/// does): a choice table read backwards, to render what was chosen.
pub(crate) fn name_of<T: PartialEq>(choices: &[(&'static str, T)], choice: &T) -> &'static str {
    choices
        .iter()
        .find(|(_, value)| value == choice)
        .map_or("", |(text, _)| text)
}

/// A ranked sort of core values by the vendor's values they show as: each core value (a
/// state, a kind) ranked by the number of values that sort before its vendor value, so that
/// values shown alike tie. What [`jobstore::ListQuery::sort_rank`] takes.
pub(crate) fn ranks<K: Ord>(
    shown: impl IntoIterator<Item = (&'static str, K)>,
) -> BTreeMap<String, i64> {
    let shown: Vec<(&str, K)> = shown.into_iter().collect();
    let rank = |key: &K| shown.iter().filter(|(_, other)| other < key).count();
    shown
        .iter()
        .map(|(value, key)| ((*value).to_owned(), i64::try_from(rank(key)).unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::says;

    #[test]
    fn values_decode_and_repeat() {
        let mut query = Query::parse(Some("state=queued&state=failed,running&q=x+y&k=a%2Bb"))
            .unwrap_or_default();
        assert_eq!(query.list("state"), ["queued", "failed", "running"]);
        assert_eq!(query.one("q").ok().flatten().as_deref(), Some("x y"));
        assert_eq!(query.one("k").ok().flatten().as_deref(), Some("a+b"));
        assert!(query.finish().is_ok());
        assert!(Query::parse(Some("a=%zz")).is_err());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        let mut query = Query::parse(Some("limit=1&limit=2&colour=red")).unwrap_or_default();
        let repeated = query.int("limit", 1, 10).unwrap_err();
        assert_eq!(repeated.kind, ErrorKind::InvalidQuery);
        let _ = query.all("sort");
        let unknown = query.finish().unwrap_err();
        says(&unknown, "`colour`");
        says(&unknown, "limit, sort");
    }

    #[test]
    fn page_sizes_follow_the_policy() {
        let (refuse, clamp) = (OverMax::Refuse, OverMax::Clamp);
        let size = |raw: &str, over| Query::parse(Some(raw))?.page_size("n", 10, 100, over);
        assert_eq!(size("", refuse), Ok(10));
        assert_eq!(size("n=100", refuse), Ok(100));
        assert!(size("n=101", refuse).is_err());
        assert_eq!(size("n=99999999999999999999999", clamp), Ok(100));
        for bad in ["n=0", "n=-1", "n=1.5", "n=", "n=x"] {
            assert!(size(bad, clamp).is_err(), "{bad}");
        }
        let blank = Query::parse(Some("n=")).map(Query::blank_is_absent);
        assert_eq!(
            blank.and_then(|mut q| q.page_size("n", 10, 100, clamp)),
            Ok(10)
        );
    }

    #[test]
    fn choices_are_whitelisted() {
        let choices = [("asc", 1), ("desc", 2)];
        let mut query = Query::parse(Some("order=desc")).unwrap_or_default();
        assert_eq!(query.choice("order", &choices), Ok(Some(2)));
        let err = choose("order", "up", &choices).unwrap_err();
        says(&err, "valid: asc, desc");
        let ranks = ranks([("x", "B"), ("y", "A"), ("z", "B")]);
        assert!(ranks["y"] < ranks["x"] && ranks["x"] == ranks["z"]);
        let fields = [("id", 1)];
        assert_eq!(sort("s", "id", None, &fields), Ok((1, Direction::Desc)));
        assert_eq!(
            sort("s", "id", Some("asc"), &fields),
            Ok((1, Direction::Asc))
        );
        let err = sort("s", "id", Some("up"), &fields).unwrap_err();
        assert!(err.message.starts_with("s direction: "), "{}", err.message);
        assert_eq!(distinct([Ok(2), Ok(1), Ok(2)]), Ok(vec![2, 1]));
        assert!(distinct([Ok(1), Err(invalid("x"))]).is_err());
        let named = [("a", 1), ("b", 2), ("also-b", 2)];
        assert_eq!((name_of(&named, &2), name_of(&named, &3)), ("b", ""));
    }
}
