//! Writes: create, replace, patch, server-side apply and delete, with the metadata rules the
//! real server applies (server-owned fields, generation, status subresource, finalizers).

use serde_json::{Value, json};

use super::{Store, desired_state, is_dns_subdomain, meta_str, metadata_mut};
use crate::apply::{FieldOwners, conflict_message};
use crate::metadata::now_rfc3339;
use crate::patch::{PatchKind, apply_patch};
use crate::resource::Resource;
use crate::status::{ApiError, Reason};
use crate::watch::ChangeKind;

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Main,
    Status,
    /// Spec and status in one write (the binding subresource sets nodeName and a condition).
    Whole,
}

/// Per-request write options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteOptions<'a> {
    /// `dryRun=All`: validate and answer, but store nothing.
    pub(crate) dry_run: bool,
    /// `fieldManager`, or the client's default.
    pub(crate) manager: &'a str,
}

/// DeleteOptions.preconditions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

impl Store {
    /// Checks and completes a body for create (name, namespace, kind) without storing it.
    fn prepare_create(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        mut body: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        check_type(resource, &mut body)?;
        let generated = meta_str(&body, "generateName").map(str::to_owned);
        let name = match (meta_str(&body, "name"), generated) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) => format!("{prefix}{}", self.identities.name_suffix()),
            (None, None) => {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        };
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                resource,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let namespace = check_namespace(resource, namespace, &body, &name)?;
        if meta_str(&body, "resourceVersion").is_some() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if resource.status_subresource && !keep_status {
            // As the real server's create strategies do: status is the controllers' to write.
            match resource.kind.as_str() {
                "Pod" => body["status"] = json!({"phase": "Pending"}),
                "Namespace" => body["status"] = json!({"phase": "Active"}),
                _ => {
                    if let Some(map) = body.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        let uid = self.identities.uid();
        let meta = metadata_mut(&mut body);
        meta.insert("name".into(), json!(name));
        match namespace {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        Ok(body)
    }

    pub(crate) fn create(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        body: Value,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let object = self.prepare_create(resource, namespace, body, false)?;
        self.store_new(resource, object, options)
    }

    /// A test seed: like a create, but status is kept (so pods can be seeded Running).
    pub(crate) fn insert(&mut self, body: Value) -> Result<Value, ApiError> {
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        let resource = self
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("no resource registered for {api_version} {kind}"))
            })?;
        let namespace = meta_str(&body, "namespace")
            .map(str::to_owned)
            .or_else(|| resource.namespaced.then(|| "default".to_owned()));
        let object = self.prepare_create(&resource, namespace.as_deref(), body, true)?;
        let options = WriteOptions {
            dry_run: false,
            manager: "aistor-kube-fake",
        };
        self.store_new(&resource, object, options)
    }

    fn store_new(
        &mut self,
        resource: &Resource,
        object: Value,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let namespace = meta_str(&object, "namespace").map(str::to_owned);
        if self.stored(resource, namespace.as_deref(), &name).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        if options.dry_run {
            return Ok(object);
        }
        let mut owners = FieldOwners::default();
        owners.record_update(None, &object, options.manager);
        Ok(self.commit(resource, ChangeKind::Created, object, None, owners))
    }

    /// PUT: replaces the main resource or its status.
    pub(crate) fn replace(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        target: Target,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        check_type(resource, &mut body)?;
        let current = self.get(resource, namespace, name)?;
        if let Some(rv) = meta_str(&body, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        self.write_update(
            resource, namespace, name, current, body, target, options, None,
        )
    }

    /// PATCH with a merge, JSON or strategic patch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        target: Target,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, namespace, name)?;
        let patched = apply_patch(kind, &current, patch)
            .map_err(|why| ApiError::new(422, Reason::Invalid, why))?;
        // A resourceVersion in the patched object is a precondition, as on the real server.
        if let Some(rv) = meta_str(&patched, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        let mut patched = patched;
        check_type(resource, &mut patched)?;
        self.write_update(
            resource, namespace, name, current, patched, target, options, None,
        )
    }

    /// Server-side apply (`application/apply-patch+yaml`); creates the object when missing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        mut config: Value,
        target: Target,
        force: bool,
        options: WriteOptions<'_>,
    ) -> Result<(Value, bool), ApiError> {
        check_type(resource, &mut config)?;
        if meta_str(&config, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&config, "name").unwrap_or_default()
            )));
        }
        let existing = self
            .stored(resource, namespace, name)
            .map(|s| (s.object.clone(), s.owners.clone()));
        let api_version = resource.api_version();
        let Some((current, mut owners)) = existing else {
            if target == Target::Status {
                return Err(ApiError::not_found(resource, name));
            }
            let mut owners = FieldOwners::default();
            let mut body = owners
                .apply(None, &config, options.manager, force)
                .map_err(|c| {
                    ApiError::conflict_apply(resource, name, &conflict_message(&c, &api_version))
                })?;
            metadata_mut(&mut body).insert("name".into(), json!(name));
            let object = self.prepare_create(resource, namespace, body, false)?;
            if options.dry_run {
                return Ok((object, true));
            }
            let mut fresh = FieldOwners::default();
            fresh.apply(None, &config, options.manager, true).ok();
            return Ok((
                self.commit(resource, ChangeKind::Created, object, None, fresh),
                true,
            ));
        };
        if let Some(rv) = meta_str(&config, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        let applied = owners
            .apply(Some(&current), &config, options.manager, force)
            .map_err(|c| {
                ApiError::conflict_apply(resource, name, &conflict_message(&c, &api_version))
            })?;
        let updated = self.write_update(
            resource,
            namespace,
            name,
            current,
            applied,
            target,
            options,
            Some(owners),
        )?;
        Ok((updated, false))
    }

    /// The common tail of PUT, PATCH and apply: keeps server-owned metadata, honours the status
    /// subresource, counts generations, skips no-op writes, and finishes a pending deletion.
    #[allow(clippy::too_many_arguments)]
    fn write_update(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        current: Value,
        mut body: Value,
        target: Target,
        options: WriteOptions<'_>,
        owners: Option<FieldOwners>,
    ) -> Result<Value, ApiError> {
        if let Some(body_name) = meta_str(&body, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        check_namespace(resource, namespace, &body, name)?;
        let mut next = match target {
            // A status write changes nothing but .status (metadata included, as the real
            // server's ResetObjectMetaForStatus does).
            Target::Status => {
                let mut next = current.clone();
                match body.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                next
            }
            Target::Main | Target::Whole => {
                if resource.status_subresource && target == Target::Main {
                    match current.get("status") {
                        Some(status) => body["status"] = status.clone(),
                        None => {
                            if let Some(map) = body.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                let old_meta = current
                    .get("metadata")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let meta = metadata_mut(&mut body);
                for field in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                ] {
                    match old_meta.get(field) {
                        Some(v) => meta.insert(field.into(), v.clone()),
                        None => meta.remove(field),
                    };
                }
                meta.remove("managedFields");
                body
            }
        };
        if desired_state(&next) != desired_state(&current) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        if next == current {
            return Ok(current);
        }
        if options.dry_run {
            return Ok(next);
        }
        let owners = owners.unwrap_or_else(|| {
            let mut owners = self
                .stored(resource, namespace, name)
                .map(|s| s.owners.clone())
                .unwrap_or_default();
            owners.record_update(Some(&current), &next, options.manager);
            owners
        });
        let finished = next.pointer("/metadata/deletionTimestamp").is_some()
            && next
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        let updated = self.commit(resource, ChangeKind::Updated, next, Some(current), owners);
        if finished {
            // The last finalizer is gone: the pending deletion completes now.
            self.commit(
                resource,
                ChangeKind::Deleted,
                updated.clone(),
                None,
                FieldOwners::default(),
            );
        }
        Ok(updated)
    }

    /// DELETE one object: immediate, or marked with a deletionTimestamp while finalizers remain.
    pub(crate) fn delete(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, namespace, name)?;
        if let Some(uid) = &preconditions.uid {
            let actual = meta_str(&current, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = &preconditions.resource_version {
            let actual = meta_str(&current, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, \
                         ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut marked = current.clone();
            let meta = metadata_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if dry_run {
                return Ok(marked);
            }
            let owners = self
                .stored(resource, namespace, name)
                .map(|s| s.owners.clone())
                .unwrap_or_default();
            return Ok(self.commit(resource, ChangeKind::Updated, marked, Some(current), owners));
        }
        if dry_run {
            return Ok(current);
        }
        Ok(self.commit(
            resource,
            ChangeKind::Deleted,
            current,
            None,
            FieldOwners::default(),
        ))
    }
}

impl ApiError {
    fn conflict_apply(resource: &Resource, name: &str, message: &str) -> ApiError {
        let mut error = ApiError::new(409, Reason::Conflict, message.to_owned());
        error.details = Some(Box::new(crate::status::Details::of(resource, name)));
        error
    }
}

/// Fills in or checks apiVersion and kind against the URL's resource.
fn check_type(resource: &Resource, body: &mut Value) -> Result<(), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let api_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(resource.kind));
        }
        Some(k) if k != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// The namespace an object will live in; a body naming another namespace than the URL is a
/// 400 BadRequest, as on the real server.
fn check_namespace(
    resource: &Resource,
    url_namespace: Option<&str>,
    body: &Value,
    name: &str,
) -> Result<Option<String>, ApiError> {
    if !resource.namespaced {
        return Ok(None);
    }
    let Some(url_ns) = url_namespace else {
        return Err(ApiError::bad_request(format!(
            "{} \"{name}\" is namespaced: the request must name a namespace",
            resource.qualified()
        )));
    };
    match meta_str(body, "namespace") {
        Some(ns) if ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(Some(url_ns.to_owned())),
    }
}
