//! One request frame to one response frame: the request header, the API and version check,
//! the body decoded with Kafka's schema for that version, one handler per API (`apis/`), the
//! response encoded at the request's version.
//!
//! What cannot be answered in the request's own version ends the connection, as Kafka's
//! brokers do: a frame too short for a header, an unknown API key, a version not advertised
//! (except ApiVersions, answered in v0 with `UNSUPPORTED_VERSION` and the advertised
//! versions, per KIP-511), a header or body that does not decode. Errors inside a decoded
//! request (a bad batch, an unknown topic) are Kafka error codes in the response.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;

use super::apis;
use super::errors::KafkaError;
use super::link::CoreLink;
use super::listener::KafkaContext;
use super::partitions::Lookup;

/// What to do after a request.
#[derive(Debug)]
pub enum Dispatched {
    Respond(Bytes),
    /// A produce with acks=0: Kafka clients expect no response.
    NoResponse,
    Close(String),
}

/// One connection's state: its context and its registrations with partitions' event loops.
pub struct Session {
    pub context: Arc<KafkaContext>,
    serial: u64,
    links: BTreeMap<(String, i32), CoreLink>,
}

impl Session {
    pub fn new(context: Arc<KafkaContext>, serial: u64) -> Session {
        Session {
            context,
            serial,
            links: BTreeMap::new(),
        }
    }

    /// This connection's link to the partition's core, opened on first use;
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a partition not in the table, `LEADER_NOT_AVAILABLE`
    /// for one whose loop is not up here yet (a topic just created: the client retries).
    pub async fn link(&mut self, topic: &str, partition: i32) -> Result<&mut CoreLink, KafkaError> {
        let key = (topic.to_owned(), partition);
        if !self.links.contains_key(&key) {
            let inputs = match self.context.routes().route(topic, partition) {
                Lookup::Up(route) => route.inputs.clone(),
                Lookup::NotUp => return Err(KafkaError::of(ResponseError::LeaderNotAvailable)),
                Lookup::Unknown => {
                    return Err(KafkaError::of(ResponseError::UnknownTopicOrPartition))
                }
            };
            let link = CoreLink::open(inputs, self.serial).await.map_err(|error| {
                KafkaError::with(ResponseError::UnknownServerError, error.to_string())
            })?;
            self.links.insert(key.clone(), link);
        }
        Ok(self.links.get_mut(&key).expect("inserted above"))
    }

    pub async fn close(self) {
        for (_, link) in self.links {
            link.close().await;
        }
    }
}

/// A frame read as a request.
#[derive(Debug)]
pub enum Decoded {
    Request {
        correlation_id: i32,
        version: i16,
        /// Boxed: a request is far larger than the other variant.
        request: Box<RequestKind>,
    },
    /// An ApiVersions newer than served: answered in v0 (KIP-511).
    NewerApiVersions { correlation_id: i32 },
}

/// Reads the header and the body (module doc); `Err`: why the connection ends.
pub fn decode(mut frame: Bytes) -> Result<Decoded, String> {
    if frame.len() < 8 {
        return Err(format!(
            "a {}-byte frame holds no request header",
            frame.len()
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|()| format!("unknown API key {key}"))?;
    let range = apis::advertised(api).ok_or_else(|| format!("{api:?} is not served"))?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|error| format!("{api:?} header: {error}"))?;
    let correlation_id = header.correlation_id;
    if !(range.min..=range.max).contains(&version) {
        return match api {
            ApiKey::ApiVersions => Ok(Decoded::NewerApiVersions { correlation_id }),
            _ => Err(format!("{api:?} v{version} is not served ({range})")),
        };
    }
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|error| format!("{api:?} v{version} body: {error}"))?;
    if frame.has_remaining() {
        return Err(format!("{api:?} v{version}: bytes after the body"));
    }
    Ok(Decoded::Request {
        correlation_id,
        version,
        request: Box::new(request),
    })
}

/// Decodes the frame and runs its API's handler (module doc).
pub async fn dispatch(frame: Bytes, session: &mut Session) -> Dispatched {
    match decode(frame) {
        Err(reason) => Dispatched::Close(reason),
        Ok(Decoded::NewerApiVersions { correlation_id }) => respond(
            correlation_id,
            0,
            ResponseKind::ApiVersions(apis::api_versions::unsupported()),
        ),
        Ok(Decoded::Request {
            correlation_id,
            version,
            request,
        }) => match apis::handle(*request, version, session).await {
            Some(response) => respond(correlation_id, version, response),
            None => Dispatched::NoResponse,
        },
    }
}

fn respond(correlation_id: i32, version: i16, response: ResponseKind) -> Dispatched {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, response.header_version(version))
        .and_then(|()| response.encode(&mut out, version));
    match encoded {
        Ok(()) => Dispatched::Respond(out.freeze()),
        // A response the schema cannot carry at this version is a bug of a handler; the
        // client is told by a closed connection rather than a wrong frame.
        Err(error) => Dispatched::Close(format!("response not encodable: {error}")),
    }
}
