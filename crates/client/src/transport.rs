//! What a transport must offer the client: one request, one response, on a named endpoint.

use std::future::Future;

use wifiprov_transport_http::{HttpClient, TransportError};

/// Carries protocomm requests to a device. A failure means the device gave no answer.
pub trait Transport {
    /// Sends `body` to `endpoint` and returns the device's reply.
    fn request(&mut self, endpoint: &str, body: &[u8]) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;
}

impl Transport for HttpClient {
    fn request(&mut self, endpoint: &str, body: &[u8]) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        HttpClient::request(self, endpoint, body)
    }
}
