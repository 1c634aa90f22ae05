//! The daemon's API as the plugin uses it: runtime ports, bindings, status. Where
//! the daemon is comes from the configuration's `socket` (or `api`, `ca`,
//! `token_file`), else PORTCULLIS_SOCKET, else the default socket — as for the CLI.
//!
//! Invariant: every API failure becomes a CNI error that names the call and says
//! what the daemon said; an unreachable daemon is "try again later" (11), a refused
//! port or VLAN "invalid network config" (7).

use crate::spec::{CniError, NetConf, code};
use portcullis_api::{ClientError, DEFAULT_SOCKET, Method, NewBinding, NewPort};
use serde_json::Value;

/// A client of one daemon.
#[derive(Debug)]
pub struct Switch {
    opts: portcullis_api::ApiOpts,
}

/// A binding as the daemon lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub vlan: u16,
    pub ip: String,
    pub mac: String,
    pub port: String,
    pub source: String,
}

fn error(what: &str, e: ClientError) -> CniError {
    let c = match &e {
        ClientError::Connect { .. }
        | ClientError::TcpConnect { .. }
        | ClientError::Timeout { .. } => code::TRY_AGAIN_LATER,
        ClientError::Api { code: c, .. } if c == "invalid_port" => code::INVALID_CONFIG,
        ClientError::Api { .. } => code::SWITCH_REFUSED,
        _ => code::IO_FAILURE,
    };
    CniError::new(c, format!("{what}: {e}"))
}

impl Switch {
    pub fn new(conf: &NetConf) -> Switch {
        let socket = conf
            .socket
            .clone()
            .or_else(|| std::env::var_os("PORTCULLIS_SOCKET").map(Into::into))
            .unwrap_or_else(|| DEFAULT_SOCKET.into());
        Switch {
            opts: portcullis_api::ApiOpts {
                socket,
                api: conf.api.clone(),
                ca: conf.ca.clone(),
                token_file: conf.token_file.clone(),
            },
        }
    }

    fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CniError> {
        self.opts
            .call(method, path, body)
            .map_err(|e| error(what, e))
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Value, CniError> {
        self.call("the switch's status", Method::GET, "/v1/status", None)
    }

    /// `POST /v1/ports/{name}`.
    pub fn add_port(&self, name: &str, port: &NewPort) -> Result<(), CniError> {
        let body = serde_json::to_value(port)
            .map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))?;
        self.call(
            &format!("adding port {name}"),
            Method::POST,
            &format!("/v1/ports/{name}"),
            Some(body),
        )
        .map(drop)
    }

    /// `GET /v1/ports/{name}`; `None` when there is no such port.
    pub fn port(&self, name: &str) -> Result<Option<Value>, CniError> {
        match self
            .opts
            .call(Method::GET, &format!("/v1/ports/{name}"), None)
        {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { code, .. }) if code == "no_such_port" => Ok(None),
            Err(e) => Err(error(&format!("reading port {name}"), e)),
        }
    }

    /// Every port (`GET /v1/ports`).
    pub fn ports(&self) -> Result<Vec<Value>, CniError> {
        let v = self.call("listing the ports", Method::GET, "/v1/ports", None)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `DELETE /v1/ports/{name}?if_exists=true`.
    pub fn remove_port(&self, name: &str) -> Result<(), CniError> {
        self.call(
            &format!("removing port {name}"),
            Method::DELETE,
            &format!("/v1/ports/{name}?if_exists=true"),
            None,
        )
        .map(drop)
    }

    /// The bindings of `port` (`GET /v1/bindings`).
    pub fn bindings_of(&self, port: &str) -> Result<Vec<Binding>, CniError> {
        let v = self.call("listing the bindings", Method::GET, "/v1/bindings", None)?;
        let list = v["bindings"].as_array().cloned().unwrap_or_default();
        Ok(list
            .iter()
            .filter(|b| b["port"] == port)
            .filter_map(|b| {
                Some(Binding {
                    vlan: u16::try_from(b["vlan"].as_u64()?).ok()?,
                    ip: b["ip"].as_str()?.to_owned(),
                    mac: b["mac"].as_str()?.to_owned(),
                    port: port.to_owned(),
                    source: b["source"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// `POST /v1/bindings` (never `replace`: an address another guest holds is
    /// refused).
    pub fn add_binding(&self, b: &NewBinding) -> Result<(), CniError> {
        let body =
            serde_json::to_value(b).map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))?;
        self.call(
            &format!("binding {} to port {}", b.ip, b.port),
            Method::POST,
            "/v1/bindings",
            Some(body),
        )
        .map(drop)
    }

    /// `DELETE /v1/bindings/{vlan}/{ip}`; a binding already gone is no error.
    pub fn remove_binding(&self, vlan: u16, ip: &str) -> Result<(), CniError> {
        match self
            .opts
            .call(Method::DELETE, &format!("/v1/bindings/{vlan}/{ip}"), None)
        {
            Ok(_) => Ok(()),
            Err(ClientError::Api { code, .. }) if code == "no_such_binding" => Ok(()),
            Err(e) => Err(error(&format!("removing binding {ip} on VLAN {vlan}"), e)),
        }
    }
}

/// The access VLAN of a port as `GET /v1/ports/{name}` shows it.
pub fn access_vlan(port: &Value) -> Option<u16> {
    (port["vlan"]["mode"] == "access")
        .then(|| port["vlan"]["vid"].as_u64())
        .flatten()
        .and_then(|v| u16::try_from(v).ok())
}
