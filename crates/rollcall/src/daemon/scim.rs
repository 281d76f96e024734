//! A read-only SCIM 2.0 service provider over the user directory (RFC 7643, RFC 7644).
//!
//! Served on the admin listener under `/scim/v2/`: `Users` (list with paging and a
//! `userName eq "..."` filter, and get by id), `ServiceProviderConfig`, `ResourceTypes` and
//! `Schemas`. Every answer is `application/scim+json`; errors use the SCIM error schema.
//!
//! A SCIM resource id is `<source>:<vendor user id>`: vendor ids are only unique within a
//! source, and source ids cannot contain `:`, so the first `:` splits the two. The mapping
//! from the unified user, field by field, is in `docs/scim.md`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use rollcall_core::{ErrorCode, User, UserStatus};
use rollcall_store::{DirectoryEntry, StoreError, UserQuery};
use serde_json::{json, Map, Value};

use super::state::AppState;
use crate::config::Scope;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The SCIM media type (RFC 7644 section 8.1).
pub const CONTENT_TYPE: &str = "application/scim+json";
/// Page size when the client sends no `count`.
pub const DEFAULT_COUNT: u32 = 100;
/// The largest page served; also `filter.maxResults` in the ServiceProviderConfig.
pub const MAX_COUNT: u32 = 1000;

/// The `/scim/v2/` routes, behind the admin bearer token (answered with a SCIM 401).
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/scim/v2/Users", get(list_users).fallback(read_only))
        .route("/scim/v2/Users/{id}", get(get_user).fallback(read_only))
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/{*rest}", any(unknown_endpoint))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// A SCIM error answer (RFC 7644 section 3.12).
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        let mut response = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
        }
        response
    }
}

impl From<StoreError> for ScimError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => Self::not_found(format!("no {what} {id}")),
            other => {
                tracing::error!(error = %other, "store operation failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the store could not complete the operation; retry later",
                )
            }
        }
    }
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body.to_string(),
    )
        .into_response()
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match super::admin::authorize(&state, request.headers(), Scope::Read) {
        Ok(()) => {}
        Err(ErrorCode::ScopeInsufficient) => {
            return ScimError::new(StatusCode::FORBIDDEN, None, "this token may not read")
                .into_response();
        }
        Err(_) => {
            return ScimError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "a valid bearer token is required",
            )
            .into_response();
        }
    }
    next.run(request).await
}

// ----- ids, names and URLs -----

/// The SCIM id of a directory user: `<source>:<vendor user id>`.
pub fn resource_id(source: &str, user_id: &str) -> String {
    format!("{source}:{user_id}")
}

/// The source and vendor user id of a SCIM id; `None` when it has no `:`.
pub fn parse_resource_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
        .filter(|(source, user_id)| !source.is_empty() && !user_id.is_empty())
}

/// Percent-encodes one URL path segment (space as `%20`, `/` as `%2F`); `:` stays, as a
/// path segment allows it.
pub fn encode_segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
        .replace("%3A", ":")
}

/// The primary email as the directory indexes it: the one marked primary, else the first.
fn primary_email(user: &User) -> Option<&str> {
    let emails = user.emails.as_ref()?;
    emails
        .iter()
        .find(|email| email.is_primary == Some(true))
        .or_else(|| emails.first())
        .map(|email| email.email.as_str())
}

/// `userName`: the username, else the primary email, else the vendor id.
pub fn user_name(user: &User) -> &str {
    user.username
        .as_deref()
        .or_else(|| primary_email(user))
        .unwrap_or(&user.id)
}

/// The SCIM base URL as the client reached it (`http://host:port/scim/v2`), from the `Host`
/// header and `X-Forwarded-Proto`; without a `Host`, a root-relative `/scim/v2`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty() && !host.contains(['/', ' ', '"', '\\']));
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some(proto) if proto.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    match host {
        Some(host) => format!("{scheme}://{host}/scim/v2"),
        None => "/scim/v2".to_owned(),
    }
}

// ----- the User mapping -----

/// The weak ETag of a directory entry: its version.
pub fn etag(entry: &DirectoryEntry) -> String {
    format!("W/\"{}\"", entry.version)
}

fn non_empty<T>(list: &Option<Vec<T>>) -> Option<&Vec<T>> {
    list.as_ref().filter(|list| !list.is_empty())
}

/// The SCIM `User` resource (core schema plus the enterprise extension) of a directory
/// entry. `base` is the SCIM base URL for `meta.location`.
pub fn user_resource(entry: &DirectoryEntry, base: &str) -> Value {
    let user = &entry.user;
    let id = resource_id(&entry.source, &user.id);
    let mut resource = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    resource.insert("id".into(), json!(id));
    resource.insert("externalId".into(), json!(user.id));
    resource.insert("userName".into(), json!(user_name(user)));

    let joined = match (&user.first_name, &user.last_name) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (Some(one), None) | (None, Some(one)) => Some(one.clone()),
        (None, None) => None,
    };
    let formatted = user.name.clone().or(joined);
    let mut name = Map::new();
    if let Some(given) = &user.first_name {
        name.insert("givenName".into(), json!(given));
    }
    if let Some(family) = &user.last_name {
        name.insert("familyName".into(), json!(family));
    }
    if let Some(formatted) = &formatted {
        name.insert("formatted".into(), json!(formatted));
    }
    if !name.is_empty() {
        resource.insert("name".into(), Value::Object(name));
    }
    if let Some(display) = &formatted {
        resource.insert("displayName".into(), json!(display));
    }
    if let Some(title) = &user.title {
        resource.insert("title".into(), json!(title));
    }
    if let Some(emails) = non_empty(&user.emails) {
        let list: Vec<Value> = emails
            .iter()
            .map(|email| {
                let mut item = json!({"value": email.email});
                if let Some(kind) = &email.email_type {
                    item["type"] = json!(kind);
                }
                if let Some(primary) = email.is_primary {
                    item["primary"] = json!(primary);
                }
                item
            })
            .collect();
        resource.insert("emails".into(), Value::Array(list));
    }
    if let Some(phones) = non_empty(&user.phones) {
        let list: Vec<Value> = phones
            .iter()
            .map(|phone| {
                let value = match &phone.extension {
                    Some(extension) => format!("{};ext={extension}", phone.number),
                    None => phone.number.clone(),
                };
                let mut item = json!({ "value": value });
                if let Some(kind) = &phone.phone_type {
                    item["type"] = json!(kind);
                }
                item
            })
            .collect();
        resource.insert("phoneNumbers".into(), Value::Array(list));
    }
    match &user.status {
        Some(UserStatus::Active) => {
            resource.insert("active".into(), json!(true));
        }
        Some(UserStatus::Inactive | UserStatus::Deleted) => {
            resource.insert("active".into(), json!(false));
        }
        Some(UserStatus::Invited | UserStatus::Other(_)) | None => {}
    }
    if let Some(groups) = non_empty(&user.groups) {
        let list: Vec<Value> = groups
            .iter()
            .filter(|group| group.id.is_some() || group.name.is_some())
            .map(|group| {
                let mut item = Map::new();
                if let Some(id) = &group.id {
                    item.insert("value".into(), json!(id));
                }
                if let Some(name) = &group.name {
                    item.insert("display".into(), json!(name));
                }
                Value::Object(item)
            })
            .collect();
        if !list.is_empty() {
            resource.insert("groups".into(), Value::Array(list));
        }
    }
    if let Some(roles) = non_empty(&user.roles) {
        let list: Vec<Value> = roles
            .iter()
            .filter_map(|role| {
                let value = role.id.as_ref().or(role.name.as_ref())?;
                let mut item = json!({ "value": value });
                if let Some(name) = &role.name {
                    item["display"] = json!(name);
                }
                Some(item)
            })
            .collect();
        if !list.is_empty() {
            resource.insert("roles".into(), Value::Array(list));
        }
    }
    if let Some(timezone) = &user.timezone {
        resource.insert("timezone".into(), json!(timezone));
    }
    if let Some(languages) = non_empty(&user.languages) {
        resource.insert("preferredLanguage".into(), json!(languages.join(", ")));
        if let Some(first) = languages.first() {
            resource.insert("locale".into(), json!(first));
        }
    }
    if let Some(avatar) = &user.avatar {
        resource.insert("photos".into(), json!([{"value": avatar, "type": "photo"}]));
    }

    let organization = user
        .organizations
        .as_ref()
        .and_then(|organizations| organizations.first())
        .and_then(|organization| organization.name.as_ref().or(organization.id.as_ref()));
    if let Some(organization) = organization {
        schemas.push(json!(ENTERPRISE_SCHEMA));
        resource.insert(
            ENTERPRISE_SCHEMA.into(),
            json!({ "organization": organization }),
        );
    }

    let mut meta = Map::new();
    meta.insert("resourceType".into(), json!("User"));
    if let Some(created) = &user.created_at {
        meta.insert("created".into(), json!(created.to_string()));
    }
    meta.insert("lastModified".into(), json!(entry.updated_at.to_string()));
    meta.insert("version".into(), json!(etag(entry)));
    meta.insert(
        "location".into(),
        json!(format!("{base}/Users/{}", encode_segment(&id))),
    );
    resource.insert("meta".into(), Value::Object(meta));
    resource.insert("schemas".into(), Value::Array(schemas));
    Value::Object(resource)
}

// ----- query parameters -----

/// A `filter` this service understands: `userName eq "<value>"`.
///
/// The attribute name (bare or with the core schema URN) and the operator are
/// case-insensitive; the value is a JSON string. Anything else is `invalidFilter`.
pub fn parse_filter(filter: &str) -> Result<String, ScimError> {
    let invalid = || {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            format!("unsupported filter {filter:?}: only userName eq \"...\" is supported"),
        )
    };
    let text = filter.trim();
    let (attribute, rest) = text.split_once(char::is_whitespace).ok_or_else(invalid)?;
    let attribute_ok = attribute.eq_ignore_ascii_case("userName")
        || attribute.eq_ignore_ascii_case(&format!("{USER_SCHEMA}:userName"));
    let (operator, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let value = value.trim();
    if !attribute_ok || !operator.eq_ignore_ascii_case("eq") || !value.starts_with('"') {
        return Err(invalid());
    }
    serde_json::from_str::<String>(value).map_err(|_| invalid())
}

/// `startIndex`, `count` and `filter` of a list request.
#[derive(Debug, PartialEq, Eq)]
pub struct ListParams {
    /// 1-based.
    pub start_index: u32,
    pub count: u32,
    pub user_name: Option<String>,
}

/// Reads the list parameters (RFC 7644 section 3.4.2): a `startIndex` below 1 is 1, a
/// negative `count` is 0, a `count` over [`MAX_COUNT`] is [`MAX_COUNT`]. `sortBy`,
/// `sortOrder`, `attributes` and `excludedAttributes` are ignored.
pub fn list_params(query: Option<&str>) -> Result<ListParams, ScimError> {
    let mut params = ListParams {
        start_index: 1,
        count: DEFAULT_COUNT,
        user_name: None,
    };
    let number = |name: &str, value: &str| {
        value.trim().parse::<i64>().map_err(|_| {
            ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{name} must be an integer, not {value:?}"),
            )
        })
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name.eq_ignore_ascii_case("startIndex") {
            let start = number("startIndex", &value)?;
            params.start_index = u32::try_from(start.max(1)).unwrap_or(u32::MAX);
        } else if name.eq_ignore_ascii_case("count") {
            let count = number("count", &value)?;
            params.count = u32::try_from(count.clamp(0, i64::from(MAX_COUNT))).unwrap_or(0);
        } else if name.eq_ignore_ascii_case("filter") {
            params.user_name = Some(parse_filter(&value)?);
        }
    }
    Ok(params)
}

// ----- handlers -----

async fn list_users(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    let params = list_params(query.as_deref())?;
    let offset = params.start_index - 1;
    let (entries, total) = match &params.user_name {
        None => {
            state
                .store
                .users(UserQuery {
                    offset,
                    limit: params.count,
                    ..UserQuery::default()
                })
                .await?
        }
        Some(name) => users_named(&state, name, offset, params.count).await?,
    };
    let base = base_url(&headers);
    let resources: Vec<Value> = entries
        .iter()
        .map(|entry| user_resource(entry, &base))
        .collect();
    let body = json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": params.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok(scim_json(StatusCode::OK, &body))
}

/// The live users whose `userName` is `name`, paged: the directory's index (username, else
/// primary email, case-insensitively), then the users of configured sources whose
/// `userName` falls back to their vendor id because they have neither.
async fn users_named(
    state: &AppState,
    name: &str,
    offset: u32,
    limit: u32,
) -> Result<(Vec<DirectoryEntry>, u64), ScimError> {
    let (mut page, indexed) = state
        .store
        .users(UserQuery {
            user_name: Some(name.to_owned()),
            offset,
            limit,
            ..UserQuery::default()
        })
        .await?;
    let mut sources: Vec<&String> = state.sources.keys().collect();
    sources.sort();
    let mut by_id = Vec::new();
    for source in sources {
        match state.store.user(source, name).await {
            Ok(entry)
                if !entry.deleted
                    && entry.user.username.is_none()
                    && primary_email(&entry.user).is_none() =>
            {
                by_id.push(entry);
            }
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let total = indexed + by_id.len() as u64;
    let room = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(page.len());
    let skip = usize::try_from(u64::from(offset).saturating_sub(indexed)).unwrap_or(usize::MAX);
    page.extend(by_id.into_iter().skip(skip).take(room));
    Ok((page, total))
}

async fn get_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let not_found = || ScimError::not_found(format!("no User {id:?}"));
    let (source, user_id) = parse_resource_id(&id).ok_or_else(not_found)?;
    let entry = match state.store.user(source, user_id).await {
        Ok(entry) if !entry.deleted => entry,
        Ok(_) | Err(StoreError::NotFound { .. }) => return Err(not_found()),
        Err(error) => return Err(error.into()),
    };
    let tag = etag(&entry);
    let tag_header = HeaderValue::from_str(&tag).map_err(|_| not_found())?;
    if if_none_match(&headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, tag_header);
        return Ok(response);
    }
    let resource = user_resource(&entry, &base_url(&headers));
    let mut response = scim_json(StatusCode::OK, &resource);
    response.headers_mut().insert(header::ETAG, tag_header);
    if let Some(location) = resource["meta"]["location"]
        .as_str()
        .and_then(|location| HeaderValue::from_str(location).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Whether `If-None-Match` names `tag` (weak comparison) or is `*`.
fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    let opaque = |value: &str| value.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim() == "*" || opaque(candidate) == opaque(tag))
}

async fn read_only() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "this SCIM service is read-only: only GET is supported",
    )
}

async fn unknown_endpoint() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

/// RFC 7644 section 4: discovery endpoints ignore query parameters, and answer a `filter`
/// with 403 so that a client cannot assume it was applied.
fn refuse_filter(query: Option<&str>) -> Result<(), ScimError> {
    let filtered = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(name, _)| name.eq_ignore_ascii_case("filter"));
    if filtered {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "filtering is not supported on this endpoint",
        ));
    }
    Ok(())
}

async fn service_provider_config(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    let base = base_url(&headers);
    let schemes = if !state.admin_tokens.is_empty() {
        json!([{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The admin API token ([admin] token in the configuration), sent as Authorization: Bearer <token>.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }])
    } else {
        json!([])
    };
    let body = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": false},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": schemes,
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    Ok(scim_json(StatusCode::OK, &body))
}

fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A user of a source, as rollcall's directory knows it (read-only).",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn resource_types(
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    let body = list_of(vec![user_resource_type(&base_url(&headers))]);
    Ok(scim_json(StatusCode::OK, &body))
}

async fn resource_type(Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ScimError> {
    if id != "User" {
        return Err(ScimError::not_found(format!("no ResourceType {id:?}")));
    }
    Ok(scim_json(
        StatusCode::OK,
        &user_resource_type(&base_url(&headers)),
    ))
}

async fn schemas(headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    let body = list_of(schema_documents(&base_url(&headers)));
    Ok(scim_json(StatusCode::OK, &body))
}

async fn schema(Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ScimError> {
    schema_documents(&base_url(&headers))
        .into_iter()
        .find(|document| document["id"] == id.as_str())
        .map(|document| scim_json(StatusCode::OK, &document))
        .ok_or_else(|| ScimError::not_found(format!("no Schema {id:?}")))
}

// ----- schema documents (RFC 7643 section 7) -----

/// One attribute definition. Everything this service serves is read-only.
fn attribute(name: &str, kind: &str, multi_valued: bool, description: &str) -> Value {
    let mut definition = json!({
        "name": name,
        "type": kind,
        "multiValued": multi_valued,
        "description": description,
        "required": false,
        "mutability": "readOnly",
        "returned": "default",
    });
    if kind == "string" || kind == "reference" {
        definition["caseExact"] = json!(false);
        definition["uniqueness"] = json!("none");
    }
    definition
}

fn complex(name: &str, multi_valued: bool, description: &str, sub: Vec<Value>) -> Value {
    let mut definition = attribute(name, "complex", multi_valued, description);
    definition["subAttributes"] = Value::Array(sub);
    definition
}

fn with(mut definition: Value, key: &str, value: Value) -> Value {
    definition[key] = value;
    definition
}

/// The core User schema (the attributes this service maps) and the enterprise extension.
pub fn schema_documents(base: &str) -> Vec<Value> {
    let string = |name: &str, description: &str| attribute(name, "string", false, description);
    let user_attributes = vec![
        with(
            string(
                "userName",
                "The username, else the primary email, else the vendor's user id. Unique within a source only.",
            ),
            "required",
            json!(true),
        ),
        complex(
            "name",
            false,
            "The components of the user's name.",
            vec![
                string("formatted", "The full name: the vendor's name, else given and family names joined."),
                string("familyName", "The family name."),
                string("givenName", "The given name."),
            ],
        ),
        string("displayName", "The name to display: the same value as name.formatted."),
        string("title", "The user's title."),
        string("preferredLanguage", "The user's languages, as an Accept-Language list."),
        string("locale", "The user's first language."),
        string("timezone", "The user's time zone, an IANA name when the vendor's maps to one."),
        attribute(
            "active",
            "boolean",
            false,
            "True when the user is active, false when inactive or deleted; absent otherwise.",
        ),
        complex(
            "emails",
            true,
            "Email addresses.",
            vec![
                string("value", "The address."),
                string("type", "The vendor's label for the address."),
                attribute("primary", "boolean", false, "True for the primary address."),
            ],
        ),
        complex(
            "phoneNumbers",
            true,
            "Phone numbers.",
            vec![
                string("value", "The number, with ;ext=<extension> when the vendor sends one."),
                string("type", "The vendor's label for the number."),
            ],
        ),
        complex(
            "photos",
            true,
            "The user's avatar.",
            vec![
                attribute("value", "reference", false, "The image URL."),
                string("type", "Always photo."),
            ],
        ),
        complex(
            "groups",
            true,
            "The vendor groups the user belongs to (there is no Groups endpoint).",
            vec![
                string("value", "The vendor's group id."),
                string("display", "The group's name."),
            ],
        ),
        complex(
            "roles",
            true,
            "The user's roles in the vendor.",
            vec![
                string("value", "The vendor's role id, else its name."),
                string("display", "The role's name."),
            ],
        ),
    ];
    let enterprise_attributes = vec![string(
        "organization",
        "The name (else id) of the first organization the vendor names for the user.",
    )];
    vec![
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": USER_SCHEMA,
            "name": "User",
            "description": "User Account",
            "attributes": user_attributes,
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{USER_SCHEMA}"),
            },
        }),
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": ENTERPRISE_SCHEMA,
            "name": "EnterpriseUser",
            "description": "Enterprise User",
            "attributes": enterprise_attributes,
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{ENTERPRISE_SCHEMA}"),
            },
        }),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::time::Duration;

    use axum::body::Body;
    use http_body_util::BodyExt;
    use rollcall_core::{
        Email, EventType, Group, Organization, Phone, Role, Secret, Timestamp, UserEvent,
        VendorEvent,
    };
    use rollcall_store::{IngestBatch, Store};
    use tower::ServiceExt;

    use super::*;
    use crate::daemon::Source;
    use crate::metrics::Metrics;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn entry(user: User) -> DirectoryEntry {
        DirectoryEntry {
            source: "fs".into(),
            version: 3,
            deleted: false,
            partial: false,
            updated_at: at("2026-01-02T03:04:05Z"),
            user,
        }
    }

    fn full_user() -> User {
        User {
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            name: Some("Ann B. Lee".into()),
            title: Some("Engineer".into()),
            username: Some("ann".into()),
            emails: Some(vec![
                Email {
                    email: "ann@home.example".into(),
                    email_type: Some("home".into()),
                    is_primary: None,
                },
                Email {
                    email: "ann@work.example".into(),
                    email_type: None,
                    is_primary: Some(true),
                },
            ]),
            phones: Some(vec![
                Phone {
                    number: "+3612345".into(),
                    extension: Some("12".into()),
                    phone_type: Some("work".into()),
                },
                Phone {
                    number: "555".into(),
                    extension: None,
                    phone_type: None,
                },
            ]),
            status: Some(UserStatus::Active),
            roles: Some(vec![
                Role {
                    id: Some("30".into()),
                    name: Some("SD Agent".into()),
                    ..Role::default()
                },
                Role {
                    name: Some("it_agent".into()),
                    ..Role::default()
                },
                Role {
                    group: Some("4".into()),
                    ..Role::default()
                },
            ]),
            organizations: Some(vec![
                Organization {
                    id: Some("18".into()),
                    name: Some("Finance".into()),
                },
                Organization {
                    id: Some("19".into()),
                    name: None,
                },
            ]),
            groups: Some(vec![
                Group {
                    id: Some("31".into()),
                    name: Some("Change Team".into()),
                    organization: None,
                },
                Group {
                    id: Some("4".into()),
                    ..Group::default()
                },
            ]),
            avatar: Some("https://img.example/ann.png".into()),
            timezone: Some("Asia/Kolkata".into()),
            languages: Some(vec!["en-US".into(), "hu".into()]),
            created_at: Some(at("2023-05-18T11:06:00Z")),
            updated_at: Some(at("2023-05-19T11:06:00Z")),
            remote_data: Some(json!({"secret_stuff": "not in SCIM"}).into()),
            ..User::with_id("93")
        }
    }

    #[test]
    fn maps_every_unified_field_to_its_scim_attribute() {
        let resource = user_resource(&entry(full_user()), "http://h/scim/v2");
        assert_eq!(
            resource,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
                "id": "fs:93",
                "externalId": "93",
                "userName": "ann",
                "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann B. Lee"},
                "displayName": "Ann B. Lee",
                "title": "Engineer",
                "emails": [
                    {"value": "ann@home.example", "type": "home"},
                    {"value": "ann@work.example", "primary": true},
                ],
                "phoneNumbers": [
                    {"value": "+3612345;ext=12", "type": "work"},
                    {"value": "555"},
                ],
                "active": true,
                "groups": [{"value": "31", "display": "Change Team"}, {"value": "4"}],
                "roles": [{"value": "30", "display": "SD Agent"}, {"value": "it_agent", "display": "it_agent"}],
                "timezone": "Asia/Kolkata",
                "preferredLanguage": "en-US, hu",
                "locale": "en-US",
                "photos": [{"value": "https://img.example/ann.png", "type": "photo"}],
                ENTERPRISE_SCHEMA: {"organization": "Finance"},
                "meta": {
                    "resourceType": "User",
                    "created": "2023-05-18T11:06:00Z",
                    "lastModified": "2026-01-02T03:04:05Z",
                    "version": "W/\"3\"",
                    "location": "http://h/scim/v2/Users/fs:93",
                },
            })
        );
    }

    #[test]
    fn a_bare_user_has_only_what_rollcall_knows() {
        let resource = user_resource(&entry(User::with_id("7")), "");
        assert_eq!(
            resource,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "fs:7",
                "externalId": "7",
                "userName": "7",
                "meta": {
                    "resourceType": "User",
                    "lastModified": "2026-01-02T03:04:05Z",
                    "version": "W/\"3\"",
                    "location": "/Users/fs:7",
                },
            })
        );
    }

    #[test]
    fn user_name_falls_back_to_the_primary_email_then_the_id() {
        let mut user = full_user();
        user.username = None;
        assert_eq!(user_name(&user), "ann@work.example");
        user.emails.as_mut().unwrap()[1].is_primary = None;
        assert_eq!(user_name(&user), "ann@home.example");
        user.emails = Some(Vec::new());
        assert_eq!(user_name(&user), "93");
    }

    #[test]
    fn active_follows_the_unified_status() {
        let active = |status: Option<UserStatus>| {
            let user = User {
                status,
                ..User::with_id("1")
            };
            user_resource(&entry(user), "").get("active").cloned()
        };
        assert_eq!(active(Some(UserStatus::Active)), Some(json!(true)));
        assert_eq!(active(Some(UserStatus::Inactive)), Some(json!(false)));
        assert_eq!(active(Some(UserStatus::Deleted)), Some(json!(false)));
        assert_eq!(active(Some(UserStatus::Invited)), None);
        assert_eq!(active(Some(UserStatus::Other("pending".into()))), None);
        assert_eq!(active(None), None);
    }

    #[test]
    fn names_are_composed_from_parts_when_the_vendor_sends_no_full_name() {
        let user = User {
            first_name: Some("test".into()),
            last_name: Some("30".into()),
            ..User::with_id("93")
        };
        let resource = user_resource(&entry(user), "");
        assert_eq!(resource["name"]["formatted"], "test 30");
        assert_eq!(resource["displayName"], "test 30");
        let only_family = User {
            last_name: Some("Lee".into()),
            ..User::with_id("1")
        };
        assert_eq!(
            user_resource(&entry(only_family), "")["name"],
            json!({"familyName": "Lee", "formatted": "Lee"})
        );
    }

    #[test]
    fn organization_uses_the_id_when_the_name_is_unknown() {
        let user = User {
            organizations: Some(vec![Organization {
                id: Some("360".into()),
                name: None,
            }]),
            ..User::with_id("1")
        };
        let resource = user_resource(&entry(user), "");
        assert_eq!(resource[ENTERPRISE_SCHEMA], json!({"organization": "360"}));
        assert_eq!(resource["schemas"], json!([USER_SCHEMA, ENTERPRISE_SCHEMA]));
    }

    #[test]
    fn ids_carry_the_source_and_locations_are_percent_encoded() {
        let mut bare = entry(User::with_id("a/b c:d"));
        bare.source = "zd".into();
        let resource = user_resource(&bare, "http://h/scim/v2");
        assert_eq!(resource["id"], "zd:a/b c:d");
        assert_eq!(
            resource["meta"]["location"],
            "http://h/scim/v2/Users/zd:a%2Fb%20c:d"
        );
        assert_eq!(parse_resource_id("zd:a/b c:d"), Some(("zd", "a/b c:d")));
        assert_eq!(parse_resource_id("nocolon"), None);
        assert_eq!(parse_resource_id(":1"), None);
        assert_eq!(parse_resource_id("zd:"), None);
    }

    #[test]
    fn filters_other_than_user_name_eq_are_invalid() {
        assert_eq!(parse_filter(r#"userName eq "ann""#).unwrap(), "ann");
        assert_eq!(parse_filter(r#"USERNAME EQ "Ann Lee""#).unwrap(), "Ann Lee");
        assert_eq!(
            parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a\"b""#)
                .unwrap(),
            "a\"b"
        );
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName eq ann",
            r#"userName ne "ann""#,
            r#"userName sw "a""#,
            r#"emails eq "ann""#,
            r#"userName eq "ann" and active eq true"#,
            r#"userName eq "ann"#,
            r#"(userName eq "ann")"#,
        ] {
            let error = parse_filter(bad).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(error.scim_type, Some("invalidFilter"), "{bad}");
        }
    }

    #[test]
    fn paging_parameters_follow_rfc_7644() {
        let params = |query: &str| list_params(Some(query)).unwrap();
        assert_eq!(
            list_params(None).unwrap(),
            ListParams {
                start_index: 1,
                count: DEFAULT_COUNT,
                user_name: None
            }
        );
        assert_eq!(params("startIndex=0&count=-5").start_index, 1);
        assert_eq!(params("startIndex=0&count=-5").count, 0);
        assert_eq!(params("startIndex=3&count=100000").count, MAX_COUNT);
        assert_eq!(params("startIndex=3").start_index, 3);
        assert_eq!(
            params("filter=userName%20eq%20%22x%22")
                .user_name
                .as_deref(),
            Some("x")
        );
        let error = list_params(Some("count=ten")).unwrap_err();
        assert_eq!(error.scim_type, Some("invalidValue"));
    }

    #[test]
    fn schema_documents_describe_every_mapped_attribute() {
        let documents = schema_documents("");
        let names: Vec<&str> = documents[0]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        let resource = user_resource(&entry(full_user()), "");
        for key in resource.as_object().unwrap().keys() {
            if ["schemas", "id", "externalId", "meta", ENTERPRISE_SCHEMA].contains(&key.as_str()) {
                continue;
            }
            assert!(names.contains(&key.as_str()), "{key} is not in the schema");
        }
        assert_eq!(documents[1]["id"], ENTERPRISE_SCHEMA);
        assert_eq!(documents[1]["attributes"][0]["name"], "organization");
    }

    // ----- the routes, in process -----

    fn event(source: &str, user: User, event_type: EventType) -> UserEvent {
        UserEvent {
            id: format!("{source}-{}-{}", user.id, event_type),
            event_type,
            source: source.into(),
            connector: "test".into(),
            vendor_event: VendorEvent {
                event_type: "test".into(),
                ..VendorEvent::default()
            },
            received_at: Timestamp::now(),
            actor: None,
            user,
            previous: None,
            changes: None,
            partial: false,
        }
    }

    async fn app(token: Option<&str>) -> (Router, Store, tempfile::TempDir) {
        #[derive(Debug)]
        struct Unused;
        impl rollcall_core::Connector for Unused {
            fn verify(
                &self,
                _delivery: &rollcall_core::Delivery,
            ) -> Result<(), rollcall_core::VerifyError> {
                Ok(())
            }
            fn normalize(
                &self,
                _delivery: &rollcall_core::Delivery,
            ) -> Result<Vec<UserEvent>, rollcall_core::NormalizeError> {
                Ok(Vec::new())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut sources = HashMap::new();
        for id in ["a", "b"] {
            sources.insert(
                id.to_owned(),
                Arc::new(Source {
                    id: id.to_owned(),
                    connector_name: "test",
                    connector: Box::new(Unused),
                    sync_interval: None,
                    sync_lock: Default::default(),
                    metrics: metrics.source(id),
                }),
            );
        }
        let state = Arc::new(AppState {
            sources,
            sinks: Vec::new(),
            sink_status: Default::default(),
            store: store.clone(),
            metrics,
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(2),
            admin_tokens: crate::daemon::state::AdminTokens::operate(
                token.map(|token| Secret::new(token.to_owned())),
            ),
            ingest_limits: crate::daemon::IngestLimits::new(1 << 20, 8, std::iter::empty()),
            admin_hosts: crate::daemon::state::admin_hosts(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                &[],
            ),
        });
        (router(Arc::clone(&state)).with_state(state), store, dir)
    }

    async fn ingest(store: &Store, source: &str, users: Vec<(User, EventType)>) {
        for (index, (user, event_type)) in users.into_iter().enumerate() {
            store
                .ingest(IngestBatch {
                    source: source.into(),
                    dedup_key: format!("{source}-{index}-{}-{event_type}", user.id),
                    received_at: Timestamp::now(),
                    events: vec![event(source, user, event_type)],
                })
                .await
                .unwrap();
        }
    }

    async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Value) {
        let mut request = axum::http::Request::get(uri).header("host", "scim.test");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_token_guards_scim_with_a_scim_error() {
        let (app, _store, _dir) = app(Some("t0k3n")).await;
        for token in [None, Some("wrong")] {
            let (status, headers, body) = get(&app, "/scim/v2/Users", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers[header::CONTENT_TYPE], CONTENT_TYPE);
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
            assert_eq!(body["schemas"], json!([ERROR_SCHEMA]));
            assert_eq!(body["status"], "401");
        }
        let (status, _, body) = get(&app, "/scim/v2/Users", Some("t0k3n")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["totalResults"], 0);
        assert_eq!(body["Resources"], json!([]));
        let (_, _, config) = get(&app, "/scim/v2/ServiceProviderConfig", Some("t0k3n")).await;
        assert_eq!(
            config["authenticationSchemes"][0]["type"],
            "oauthbearertoken"
        );
    }

    #[tokio::test]
    async fn a_user_without_username_or_email_is_found_by_its_id_as_user_name() {
        let (app, store, _dir) = app(None).await;
        let named = User {
            username: Some("7".into()),
            ..User::with_id("1")
        };
        ingest(
            &store,
            "a",
            vec![
                (User::with_id("7"), EventType::Created),
                (named, EventType::Created),
            ],
        )
        .await;
        ingest(&store, "b", vec![(User::with_id("7"), EventType::Created)]).await;
        let filter = "filter=userName%20eq%20%227%22";
        let (status, _, body) = get(&app, &format!("/scim/v2/Users?{filter}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["totalResults"], 3);
        let ids: Vec<&str> = body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a:1", "a:7", "b:7"]);
        // Paging runs through both parts.
        let mut paged = Vec::new();
        for start in 1..=4 {
            let (_, _, page) = get(
                &app,
                &format!("/scim/v2/Users?{filter}&count=1&startIndex={start}"),
                None,
            )
            .await;
            assert_eq!(page["totalResults"], 3);
            for resource in page["Resources"].as_array().unwrap() {
                paged.push(resource["id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(paged, ["a:1", "a:7", "b:7"]);
    }

    #[tokio::test]
    async fn tombstones_are_neither_listed_nor_served() {
        let (app, store, _dir) = app(None).await;
        ingest(
            &store,
            "a",
            vec![
                (User::with_id("1"), EventType::Created),
                (User::with_id("2"), EventType::Created),
                (User::with_id("2"), EventType::Deleted),
            ],
        )
        .await;
        let (_, _, body) = get(&app, "/scim/v2/Users", None).await;
        assert_eq!(body["totalResults"], 1);
        let (status, _, body) = get(&app, "/scim/v2/Users/a:2", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["status"], "404");
        let (status, _, _) = get(&app, "/scim/v2/Users?filter=userName%20eq%20%222%22", None).await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, body) = get(&app, "/scim/v2/Users?filter=userName%20eq%20%222%22", None).await;
        assert_eq!(body["totalResults"], 0);
    }

    #[tokio::test]
    async fn conditional_get_and_write_methods() {
        let (app, store, _dir) = app(None).await;
        ingest(&store, "a", vec![(User::with_id("1"), EventType::Created)]).await;
        let (status, headers, body) = get(&app, "/scim/v2/Users/a%3A1", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "W/\"1\"");
        assert_eq!(
            headers[header::LOCATION],
            "http://scim.test/scim/v2/Users/a:1"
        );
        assert_eq!(body["meta"]["version"], "W/\"1\"");
        let response = app
            .clone()
            .oneshot(
                axum::http::Request::get("/scim/v2/Users/a:1")
                    .header("if-none-match", "W/\"1\"")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let uri = if method == "POST" {
                "/scim/v2/Users"
            } else {
                "/scim/v2/Users/a:1"
            };
            let response = app
                .clone()
                .oneshot(
                    axum::http::Request::builder()
                        .method(method)
                        .uri(uri)
                        .body(Body::from("{}"))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED, "{method}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        }
        let (status, _, body) = get(&app, "/scim/v2/Groups", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["schemas"], json!([ERROR_SCHEMA]));
        let (status, _, _) = get(&app, "/scim/v2/Schemas?filter=id%20eq%20%22x%22", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
