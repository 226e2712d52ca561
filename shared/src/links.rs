//! AWS console links, correct for the region's partition (aws, aws-cn, aws-us-gov).

/// The partition a region belongs to.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// The console's base URL for a region.
pub fn console_base(region: &str) -> String {
    match partition(region) {
        "aws-cn" => "https://console.amazonaws.cn".to_string(),
        "aws-us-gov" => "https://console.amazonaws-us-gov.com".to_string(),
        _ => format!("https://{region}.console.aws.amazon.com"),
    }
}

/// Percent-encodes one URL path segment or fragment part.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn pipeline_execution(region: &str, pipeline: &str, execution_id: &str) -> String {
    format!(
        "{}/codesuite/codepipeline/pipelines/{}/executions/{}/timeline?region={region}",
        console_base(region),
        encode(pipeline),
        encode(execution_id)
    )
}

pub fn codebuild_build(region: &str, build_id: &str) -> String {
    // A build id is "project:uuid"; the console path wants the project and the whole id.
    let project = build_id.split(':').next().unwrap_or(build_id);
    format!(
        "{}/codesuite/codebuild/projects/{}/build/{}/?region={region}",
        console_base(region),
        encode(project),
        encode(build_id)
    )
}

pub fn codedeploy_deployment(region: &str, deployment_id: &str) -> String {
    format!("{}/codesuite/codedeploy/deployments/{}?region={region}", console_base(region), encode(deployment_id))
}

pub fn cloudwatch_alarm(region: &str, alarm_name: &str) -> String {
    format!("{}/cloudwatch/home?region={region}#alarmsV2:alarm/{}", console_base(region), encode(alarm_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_partition() {
        assert_eq!(
            pipeline_execution("eu-west-1", "web app", "abc-1"),
            "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/web%20app/executions/abc%2D1/timeline?region=eu-west-1"
        );
        assert!(codedeploy_deployment("cn-north-1", "d-1").starts_with("https://console.amazonaws.cn/"));
        assert!(cloudwatch_alarm("us-gov-west-1", "a/b").starts_with(
            "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#alarmsV2:alarm/a%2Fb"
        ));
        assert_eq!(partition("us-east-1"), "aws");
    }
}
