//! alarm-fanout: CloudWatch alarm state changes in; routed fan-out to SNS topics out.
