//! Lists: selectors, pages and continue tokens; and delete-collection, which lists first.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::{Value, json};

use super::{ObjectKey, Preconditions, Store, Stored, meta_str};
use crate::resource::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// `labelSelector`, `fieldSelector`, `limit` and `continue` of a list.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
}
impl Store {
    /// A `{Kind}List` page.
    pub(crate) fn list(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Value, ApiError> {
        let (list_revision, after) = match &query.continue_token {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                if rv < self.floor {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(key))
            }
            None => (self.revision, None),
        };
        let empty = BTreeMap::new();
        let all = self.objects.get(&resource.id()).unwrap_or(&empty);
        let limit = query.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<(&ObjectKey, &Stored)> = all
            .iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|a| *key > a))
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !resource.namespaced || ns == want))
            .filter(|(_, s)| query.labels.matches(&s.object) && query.fields.matches(&s.object))
            .take(limit)
            .collect();
        let last_key = page.last().map(|(key, _)| (*key).clone());
        let items: Vec<Value> = page.into_iter().map(|(_, s)| s.object.clone()).collect();
        // Note: continuing pages are read from the current state, not from a snapshot at
        // `list_revision` as the real server (etcd) does; the list's resourceVersion is kept.
        let mut metadata = json!({"resourceVersion": list_revision.to_string()});
        let more = self.has_more(
            resource,
            namespace,
            query,
            last_key.as_ref(),
            items.len() == limit,
        );
        if let (true, Some(key)) = (more > 0, last_key) {
            metadata["continue"] = json!(encode_continue(list_revision, &key));
            metadata["remainingItemCount"] = json!(more);
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// How many matching objects follow `last` when a page was filled.
    fn has_more(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
        last: Option<&ObjectKey>,
        page_full: bool,
    ) -> usize {
        let (Some(last), true) = (last, page_full) else {
            return 0;
        };
        self.objects
            .get(&resource.id())
            .into_iter()
            .flat_map(|m| m.range((Bound::Excluded(last.clone()), Bound::Unbounded)))
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !resource.namespaced || ns == want))
            .filter(|(_, s)| query.labels.matches(&s.object) && query.fields.matches(&s.object))
            .count()
    }

    /// DELETE on a collection: deletes every object the selectors match; returns them as a list.
    pub(crate) fn delete_collection(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let selected = ListQuery {
            limit: None,
            continue_token: None,
            ..query.clone()
        };
        let list = self.list(resource, namespace, &selected)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let name = meta_str(&item, "name").unwrap_or_default().to_owned();
            let ns = meta_str(&item, "namespace").map(str::to_owned);
            deleted.push(self.delete(
                resource,
                ns.as_deref(),
                &name,
                &Preconditions::default(),
                dry_run,
            )?);
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": deleted,
        }))
    }
}

/// Continue tokens: opaque to clients; here the hex of "revision\nnamespace\nname".
fn encode_continue(revision: u64, key: &ObjectKey) -> String {
    format!("{revision}\n{}\n{}", key.0, key.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.len().is_multiple_of(2) || token.len() > 2048 {
        return Err(invalid());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '\n');
    let rv = parts
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(invalid)?;
    let ns = parts.next().ok_or_else(invalid)?.to_owned();
    let name = parts.next().ok_or_else(invalid)?.to_owned();
    Ok((rv, (ns, name)))
}
