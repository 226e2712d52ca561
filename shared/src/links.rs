//! AWS console links and ARNs, made only of a region and a partition that are AWS's.
//!
//! A region reaches us from events (EventBridge's `region`, a pipeline's `detail.region`, the
//! region field of an alarm ARN), and an event can say anything there: `evil.example/x?` in front
//! of `.console.aws.amazon.com` makes a link to another host. So every link and every ARN we make
//! goes through [`Region::parse`]: a region that is not written as AWS writes regions, or whose
//! partition's console we do not know, gives no link at all (the message goes out without it).

/// An AWS partition, as the SDKs' endpoint rules (`partitions.json`) list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    China,
    GovCloud,
    Iso,
    IsoB,
    IsoE,
    IsoF,
    EuropeanSovereign,
}

impl Partition {
    pub const ALL: [Partition; 8] = [
        Partition::Aws,
        Partition::China,
        Partition::GovCloud,
        Partition::Iso,
        Partition::IsoB,
        Partition::IsoE,
        Partition::IsoF,
        Partition::EuropeanSovereign,
    ];

    /// The partition's id, as the first field of its ARNs has it.
    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::China => "aws-cn",
            Partition::GovCloud => "aws-us-gov",
            Partition::Iso => "aws-iso",
            Partition::IsoB => "aws-iso-b",
            Partition::IsoE => "aws-iso-e",
            Partition::IsoF => "aws-iso-f",
            Partition::EuropeanSovereign => "aws-eusc",
        }
    }

    /// A known partition id (`aws`, `aws-cn`, ...), and nothing else.
    pub fn from_id(id: &str) -> Option<Partition> {
        Partition::ALL.into_iter().find(|p| p.id() == id)
    }

    /// The console's base URL for a region of this partition, where we know the console's host
    /// (AWS General Reference, "AWS Management Console endpoints"); the isolated and sovereign
    /// partitions' consoles are not on the internet we know, so they get no link.
    fn console(self, region: Region<'_>) -> Option<String> {
        match self {
            Partition::Aws => {
                // Room for the link made from it (`console_link`): one allocation, no formatting.
                let mut url = String::with_capacity(160);
                url.push_str("https://");
                url.push_str(region.0);
                url.push_str(".console.aws.amazon.com");
                Some(url)
            }
            Partition::China => Some("https://console.amazonaws.cn".to_string()),
            Partition::GovCloud => Some("https://console.amazonaws-us-gov.com".to_string()),
            _ => None,
        }
    }
}

/// A region code written as AWS writes them: `us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `us-isob-east-1`, `eusc-de-east-1`. Only lowercase letters, digits and hyphens can be in it,
/// so it cannot change the host or the query of a URL it is put into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region<'a>(&'a str);

impl<'a> Region<'a> {
    /// `<area>-<word>[-<word>]-<number>`: an area of 2 to 4 letters, one or two words of letters,
    /// a number of at most three digits.
    pub fn parse(text: &'a str) -> Option<Region<'a>> {
        // Read in place (every link and ARN asks): the area, one or two words, the number.
        let letters = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase());
        let count = text.split('-').count();
        if !(3..=4).contains(&count) {
            return None;
        }
        let mut parts = text.split('-');
        let first = parts.next()?;
        let valid = first.len() >= 2
            && letters(first, 4)
            && parts.by_ref().take(count - 2).all(|w| letters(w, 16))
            && parts.next().is_some_and(|n| (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
        valid.then_some(Region(text))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }

    /// The partition whose region pattern this region matches; `aws` for the rest, as the SDKs'
    /// endpoint resolver does.
    pub fn partition(self) -> Partition {
        let prefixes = [
            ("us-gov-", Partition::GovCloud),
            ("us-iso-", Partition::Iso),
            ("us-isob-", Partition::IsoB),
            ("us-isof-", Partition::IsoF),
            ("eu-isoe-", Partition::IsoE),
            ("cn-", Partition::China),
            ("eusc-", Partition::EuropeanSovereign),
        ];
        prefixes.into_iter().find(|(prefix, _)| self.0.starts_with(prefix)).map(|(_, p)| p).unwrap_or(Partition::Aws)
    }

    /// The console's base URL for this region, when its partition's console is known.
    pub fn console(self) -> Option<String> {
        self.partition().console(self)
    }
}

/// An account id: twelve digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The fields of an ARN whose partition is one AWS has and whose region, if it names one, is a
/// region of that partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: Partition,
    pub service: &'a str,
    pub region: Option<Region<'a>>,
    /// Empty for resources of no account (S3 buckets), `aws` for AWS-managed ones.
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut fields = text.splitn(6, ':');
        let (arn, partition, service, region, account, resource) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        let partition = Partition::from_id(partition)?;
        let region = match region {
            "" => None,
            r => Some(Region::parse(r).filter(|r| r.partition() == partition)?),
        };
        let service_ok =
            !service.is_empty() && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let account_ok = account.is_empty() || account == "aws" || is_account_id(account);
        let resource_ok = !resource.is_empty() && !resource.chars().any(char::is_control);
        (arn == "arn" && service_ok && account_ok && resource_ok).then_some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>`, the partition the region's; `None`
/// unless the region is a region and the account an account id.
pub fn arn(service: &str, region: &str, account: &str, resource: &str) -> Option<String> {
    let region = Region::parse(region)?;
    let made = format!("arn:{}:{service}:{}:{account}:{resource}", region.partition().id(), region.as_str());
    (is_account_id(account) && Arn::parse(&made).is_some()).then_some(made)
}

/// Percent-encodes one URL path segment or fragment part.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    push_encoded(&mut out, text);
    out
}

/// [`encode`] onto `out`, chunk by chunk (not through `Display`).
fn push_encoded(out: &mut String, text: &str) {
    for chunk in percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC) {
        out.push_str(chunk);
    }
}

/// `<console>/<path>` with `?region=` and whatever `rest` adds, for a region that is AWS's.
fn console_link(region: &str, path: &str, rest: &str) -> Option<String> {
    let region = Region::parse(region)?;
    let mut link = region.console()?;
    link.reserve(path.len() + region.as_str().len() + rest.len() + 64);
    link.push('/');
    link.push_str(path);
    link.push_str("?region=");
    link.push_str(region.as_str());
    link.push_str(rest);
    Some(link)
}

/// The CloudWatch console graphing metrics: `graph` is the graph's JSON (metrics, start, end,
/// view...), as the console's deep link takes it after `#metricsV2:graph=`.
pub fn metrics_graph(region: &str, graph: &str) -> Option<String> {
    console_link(region, "cloudwatch/deeplink.js", &format!("#metricsV2:graph={}", encode(graph)))
}

pub fn pipeline_execution(region: &str, pipeline: &str, execution_id: &str) -> Option<String> {
    let path =
        format!("codesuite/codepipeline/pipelines/{}/executions/{}/timeline", encode(pipeline), encode(execution_id));
    console_link(region, &path, "")
}

pub fn codebuild_build(region: &str, build_id: &str) -> Option<String> {
    // A build id is "project:uuid"; the console path wants the project and the whole id.
    let project = build_id.split(':').next().unwrap_or(build_id);
    console_link(region, &format!("codesuite/codebuild/projects/{}/build/{}/", encode(project), encode(build_id)), "")
}

pub fn codedeploy_deployment(region: &str, deployment_id: &str) -> Option<String> {
    console_link(region, &format!("codesuite/codedeploy/deployments/{}", encode(deployment_id)), "")
}

pub fn cloudwatch_alarm(region: &str, alarm_name: &str) -> Option<String> {
    // Written into the one link (it is in every alarm message).
    let mut link = console_link(region, "cloudwatch/home", "#alarmsV2:alarm/")?;
    push_encoded(&mut link, alarm_name);
    Some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_partition() {
        assert_eq!(
            pipeline_execution("eu-west-1", "web app", "abc-1").as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/web%20app/executions/abc%2D1/timeline?region=eu-west-1")
        );
        assert!(codedeploy_deployment("cn-north-1", "d-1").unwrap().starts_with("https://console.amazonaws.cn/"));
        assert!(cloudwatch_alarm("us-gov-west-1", "a/b").unwrap().starts_with(
            "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#alarmsV2:alarm/a%2Fb"
        ));
        assert_eq!(
            codebuild_build("us-east-1", "web:5a1f").as_deref(),
            Some("https://us-east-1.console.aws.amazon.com/codesuite/codebuild/projects/web/build/web%3A5a1f/?region=us-east-1")
        );
    }

    #[test]
    fn every_region_form_aws_uses_is_a_region_of_its_partition() {
        for (region, partition) in [
            ("us-east-1", Partition::Aws),
            ("ap-southeast-5", Partition::Aws),
            ("il-central-1", Partition::Aws),
            ("mx-central-1", Partition::Aws),
            ("us-gov-west-1", Partition::GovCloud),
            ("cn-northwest-1", Partition::China),
            ("us-iso-east-1", Partition::Iso),
            ("us-isob-east-1", Partition::IsoB),
            ("eu-isoe-west-1", Partition::IsoE),
            ("us-isof-south-1", Partition::IsoF),
            ("eusc-de-east-1", Partition::EuropeanSovereign),
        ] {
            assert_eq!(Region::parse(region).map(Region::partition), Some(partition), "{region}");
        }
        for not_a_region in [
            "",
            "us",
            "us-east",
            "us-1",
            "u-east-1",
            "usaaa-east-1",
            "us-east-1234",
            "us-east-x",
            "us-a-b-c-1",
            "US-east-1",
            "us-east-1-",
            "-us-east-1",
            "us--1",
            "us-e1st-1",
            "us-abcdefghijklmnopq-1",
            "evil.example/x?-a-1",
        ] {
            assert_eq!(Region::parse(not_a_region), None, "{not_a_region:?}");
        }
        assert!(Region::parse("us-abcdefghijklmnop-1").is_some(), "a word of 16 letters");
    }

    #[test]
    fn names_are_percent_encoded_whole_in_alarm_links() {
        assert_eq!(encode("a b/ü:1"), "a%20b%2F%C3%BC%3A1");
        assert_eq!(encode(""), "");
        assert_eq!(
            cloudwatch_alarm("eu-west-1", "web 5xx/p99").as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/web%205xx%2Fp99")
        );
        assert_eq!(
            cloudwatch_alarm("cn-north-1", "a").as_deref(),
            Some("https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/a")
        );
        assert_eq!(cloudwatch_alarm("us-iso-east-1", "a"), None, "a console we do not know");
    }

    #[test]
    fn a_region_that_is_not_written_as_aws_writes_regions_gives_no_link() {
        for region in [
            "evil.example/x?",
            "evil.example",
            "us-east-1.evil.example/",
            "us-east-1/",
            "us-east-1?x=",
            "us-east-1#",
            "us-east-1@evil.example",
            "US-EAST-1",
            "us_east_1",
            "us-east-",
            "-east-1",
            "us-1",
            "us--east-1",
            "us-east-1 ",
            "us-east-one",
            "us-east-1\n",
            "u-east-1",
            "",
            "US East (N. Virginia)",
        ] {
            assert_eq!(Region::parse(region), None, "{region:?}");
            assert_eq!(cloudwatch_alarm(region, "a"), None, "{region:?}");
            assert_eq!(pipeline_execution(region, "p", "e"), None, "{region:?}");
            assert_eq!(codebuild_build(region, "b:1"), None, "{region:?}");
            assert_eq!(codedeploy_deployment(region, "d-1"), None, "{region:?}");
            assert_eq!(arn("cloudwatch", region, "123456789012", "alarm:a"), None, "{region:?}");
        }
    }

    #[test]
    fn partitions_without_a_known_console_get_no_link() {
        for region in ["us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1"] {
            assert_eq!(cloudwatch_alarm(region, "a"), None, "{region}");
        }
    }

    #[test]
    fn arns_are_read_only_from_known_partitions_and_regions_of_them() {
        let arn = Arn::parse("arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:a:b").unwrap();
        assert_eq!(arn.partition, Partition::China);
        assert_eq!(arn.region.map(Region::as_str), Some("cn-north-1"));
        assert_eq!(arn.resource, "alarm:a:b");
        assert!(Arn::parse("arn:aws:s3:::bucket").is_some());
        assert!(Arn::parse("arn:aws:iam::aws:policy/ReadOnlyAccess").is_some());
        for bad in [
            "arn:aws:cloudwatch:evil.example/x?:123456789012:alarm:a",
            "arn:evil:cloudwatch:us-east-1:123456789012:alarm:a",
            "arn:aws-cn:cloudwatch:us-east-1:123456789012:alarm:a",
            "arn:aws:cloudwatch:us-east-1:12345:alarm:a",
            "arn:aws:cloudwatch:us-east-1:123456789012:",
            "arn:aws:cloud watch:us-east-1:123456789012:alarm:a",
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a\nb",
            "urn:aws:cloudwatch:us-east-1:123456789012:alarm:a",
            "arn:aws:cloudwatch:us-east-1",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            super::arn("codepipeline", "us-gov-west-1", "123456789012", "web").as_deref(),
            Some("arn:aws-us-gov:codepipeline:us-gov-west-1:123456789012:web")
        );
        assert_eq!(super::arn("codepipeline", "us-east-1", "evil", "web"), None);
    }
}
