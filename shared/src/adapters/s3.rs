use aws_sdk_s3::primitives::ByteStream;

use super::classify;
use crate::deadline::bounded;
use crate::ports::{FailureKind, ObjectStore, PortError, PutOutcome, StoredObject, WriteCondition};

/// Stores objects in one S3 bucket.
#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ObjectStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl ObjectStore for S3ObjectStore {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        bounded("S3", "GetObject", self.get_object(key)).await
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<PutOutcome, PortError> {
        bounded("S3", "PutObject", self.put_object(key, body, content_type, condition)).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, PortError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page =
                self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).set_continuation_token(token.take());
            let output = bounded("S3", "ListObjectsV2", async {
                page.send().await.map_err(|e| classify("S3", "ListObjectsV2", &e))
            })
            .await?;
            keys.extend(output.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            token = output.next_continuation_token().map(str::to_string);
            if keys.len() >= limit || token.is_none() || output.is_truncated() != Some(true) {
                keys.truncate(limit);
                return Ok(keys);
            }
        }
    }
}

impl S3ObjectStore {
    async fn get_object(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        let result = self.client.get_object().bucket(&self.bucket).key(key).send().await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.as_service_error().map(|s| s.is_no_such_key()).unwrap_or(false) => return Ok(None),
            Err(e) => return Err(classify("S3", "GetObject", &e)),
        };
        let etag = output.e_tag.clone().unwrap_or_default();
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| PortError::new("S3", "GetObject", FailureKind::Network, e.to_string()))?
            .into_bytes()
            .to_vec();
        Ok(Some(StoredObject { body, etag }))
    }

    async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<PutOutcome, PortError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        request = match &condition {
            WriteCondition::Always => request,
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatches(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(PutOutcome::Written { etag: output.e_tag.unwrap_or_default() }),
            Err(e) => {
                let error = classify("S3", "PutObject", &e);
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the condition did not hold. 409: a concurrent conditional write won.
                // 404 on If-Match: the object we read is gone, so our view is stale as well.
                let lost_race = matches!(status, Some(412) | Some(409))
                    || (status == Some(404) && matches!(condition, WriteCondition::IfMatches(_)));
                if condition != WriteCondition::Always && lost_race {
                    Ok(PutOutcome::ConditionFailed)
                } else {
                    Err(error)
                }
            }
        }
    }
}
