//! [`ServerMessage`]: any frame a client can receive, told apart by its keys:
//! `id` is a response, `op:"notice"` a notice, `ch:"hb"` a heartbeat,
//! `type:"gap"` a gap, any other `ch` a stream event. Frames of a kind this
//! version does not know decode as [`ServerMessage::Unknown`], since clients
//! ignore message types they do not know.

use super::{Gap, Heartbeat, Notice, Response, StreamEvent};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Any message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Response(Response<Value>),
    Event(StreamEvent),
    Gap(Gap),
    Heartbeat(Heartbeat),
    Notice(Notice),
    /// A message of a kind this version does not know.
    Unknown(Value),
}

impl ServerMessage {
    /// Classifies and decodes a frame already parsed into a generic value.
    pub fn from_value(v: Value) -> Result<ServerMessage, serde_json::Error> {
        let Some(obj) = v.as_object() else {
            return Ok(ServerMessage::Unknown(v));
        };
        if obj.contains_key("id") {
            return Response::deserialize(v).map(ServerMessage::Response);
        }
        if let Some(op) = obj.get("op") {
            return if op == "notice"
                && obj
                    .get("code")
                    .is_some_and(|c| c == "shutdown" || c == "slow_consumer")
            {
                Notice::deserialize(v).map(ServerMessage::Notice)
            } else {
                Ok(ServerMessage::Unknown(v))
            };
        }
        let Some(ch) = obj.get("ch").and_then(Value::as_str) else {
            return Ok(ServerMessage::Unknown(v));
        };
        if ch == "hb" {
            return Heartbeat::deserialize(v).map(ServerMessage::Heartbeat);
        }
        if super::Channel::from_name(ch).is_none() {
            return Ok(ServerMessage::Unknown(v));
        }
        if obj.get("type").is_some_and(|t| t == "gap") {
            return Gap::deserialize(v).map(ServerMessage::Gap);
        }
        StreamEvent::deserialize(v).map(ServerMessage::Event)
    }
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerMessage::Response(m) => m.serialize(s),
            ServerMessage::Event(m) => m.serialize(s),
            ServerMessage::Gap(m) => m.serialize(s),
            ServerMessage::Heartbeat(m) => m.serialize(s),
            ServerMessage::Notice(m) => m.serialize(s),
            ServerMessage::Unknown(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ServerMessage, D::Error> {
        let v = Value::deserialize(d)?;
        ServerMessage::from_value(v).map_err(serde::de::Error::custom)
    }
}

impl From<Response<Value>> for ServerMessage {
    fn from(m: Response<Value>) -> ServerMessage {
        ServerMessage::Response(m)
    }
}

impl From<StreamEvent> for ServerMessage {
    fn from(m: StreamEvent) -> ServerMessage {
        ServerMessage::Event(m)
    }
}

impl From<Gap> for ServerMessage {
    fn from(m: Gap) -> ServerMessage {
        ServerMessage::Gap(m)
    }
}

impl From<Heartbeat> for ServerMessage {
    fn from(m: Heartbeat) -> ServerMessage {
        ServerMessage::Heartbeat(m)
    }
}

impl From<Notice> for ServerMessage {
    fn from(m: Notice) -> ServerMessage {
        ServerMessage::Notice(m)
    }
}
