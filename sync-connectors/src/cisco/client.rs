//! Requests to Control Center: Search Devices for one window and page, Get Device Details
//! for one ICCID; every answer goes through [`classify`], so error code `40000029` in a 400 is
//! a rate limit.

use sync_core::{Result, Value};

use super::config::CiscoConfig;
use super::model::classify;
use super::window::Window;
use crate::http::{Auth, HttpClient, HttpConfig, HttpRequest, HttpResponse};
use crate::rest::CursorFormat;

/// What every request of one account shares.
#[derive(Debug, Clone)]
pub(crate) struct Requests {
    devices_url: String,
    page_size: u32,
    account_id: Option<String>,
    filters: Vec<(String, String)>,
    format: CursorFormat,
}

impl Requests {
    pub(crate) fn new(config: &CiscoConfig) -> Requests {
        Requests {
            devices_url: format!("{}/devices", config.base_url.trim_end_matches('/')),
            page_size: config.page_size,
            account_id: config.account_id.clone(),
            filters: config
                .filters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            format: config.time_format.clone(),
        }
    }

    /// Search Devices for `window`'s bounds and page: `modifiedSince` rounded down and
    /// `modifiedTill` rounded up to the format's unit, so the window asked for is covered.
    pub(crate) fn search(&self, window: &Window) -> Result<HttpRequest> {
        let since = self.format.write(&Value::Timestamp(window.lo), 0, true)?;
        let till = self.format.write(&Value::Timestamp(window.hi), 0, false)?;
        let mut req = HttpRequest::get(&self.devices_url)
            .with_header("Accept", "application/json")
            .with_query("modifiedSince", since)
            .with_query("modifiedTill", till)
            .with_query("pageSize", self.page_size.to_string())
            .with_query("pageNumber", window.page.to_string());
        if let Some(account) = &self.account_id {
            req = req.with_query("accountId", account);
        }
        for (k, v) in &self.filters {
            req = req.with_query(k, v);
        }
        Ok(req)
    }

    /// Get Device Details of `iccid`.
    pub(crate) fn details(&self, iccid: &str) -> HttpRequest {
        let segment: String = url::form_urlencoded::byte_serialize(iccid.as_bytes()).collect();
        HttpRequest::get(format!("{}/{segment}", self.devices_url))
            .with_header("Accept", "application/json")
    }
}

/// The account's client: HTTP Basic with the user and API key, the account's rate limit.
pub(crate) fn account_client(config: &CiscoConfig) -> Result<HttpClient> {
    let http = HttpConfig {
        // Cisco's error envelope is short; keep enough to read it whole.
        error_body_excerpt_bytes: config.http.error_body_excerpt_bytes.max(1024),
        ..config.http.clone()
    };
    HttpClient::new(http)?
        .with_auth(Auth::Basic {
            username: config.username.clone(),
            password: config.api_key.clone(),
        })
        .with_rate_limit(config.rate_limit)
}

/// Sends `request`, classified for this API.
pub(crate) async fn send(client: &HttpClient, request: &HttpRequest) -> Result<HttpResponse> {
    client.execute(request).await.map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Secret;

    #[test]
    fn a_search_names_the_window_page_and_filters() {
        let config = CiscoConfig::builder(
            "https://restapi1.jasper.com/rws/api/v1/",
            "user",
            Secret::new("key"),
        )
        .with_account_id("100020620")
        .with_filter("status", "ACTIVATED")
        .build()
        .unwrap();
        let w = Window {
            lo: "2016-04-18T17:31:34.900Z".parse().unwrap(),
            hi: "2016-04-18T18:00:00.100Z".parse().unwrap(),
            end: "2016-04-19T00:00:00Z".parse().unwrap(),
            page: 3,
            passes: None,
        };
        let req = Requests::new(&config).search(&w).unwrap();
        assert_eq!(req.url, "https://restapi1.jasper.com/rws/api/v1/devices");
        let q: Vec<(&str, &str)> = req
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            q,
            [
                ("modifiedSince", "2016-04-18T17:31:34+00:00"),
                ("modifiedTill", "2016-04-18T18:00:01+00:00"),
                ("pageSize", "50"),
                ("pageNumber", "3"),
                ("accountId", "100020620"),
                ("status", "ACTIVATED"),
            ]
        );
        assert_eq!(
            Requests::new(&config).details("8988216716970004975").url,
            "https://restapi1.jasper.com/rws/api/v1/devices/8988216716970004975"
        );
    }
}
