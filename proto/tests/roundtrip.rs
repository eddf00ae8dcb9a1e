use ccr_proto::v1::{routing_event, EnqueueRequest, Offer, RoutingEvent, SkillRequirement};
use prost::Message;

#[test]
fn enqueue_request_survives_encode_and_decode() {
    let request = EnqueueRequest {
        contact_id: 42,
        channel: ccr_proto::v1::Channel::Voice as i32,
        queue: "billing".into(),
        tier: "gold".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 6 }],
        languages: vec!["zh".into(), "en".into()],
        ..Default::default()
    };
    let bytes = request.encode_to_vec();
    assert_eq!(EnqueueRequest::decode(bytes.as_slice()).unwrap(), request);
}

#[test]
fn routing_event_carries_its_variant() {
    let event = RoutingEvent { event: Some(routing_event::Event::Offer(Offer { offer_id: 7, ..Default::default() })) };
    let decoded = RoutingEvent::decode(event.encode_to_vec().as_slice()).unwrap();
    assert!(matches!(decoded.event, Some(routing_event::Event::Offer(Offer { offer_id: 7, .. }))));
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let bytes = EnqueueRequest { queue: "billing".into(), ..Default::default() }.encode_to_vec();
    assert!(EnqueueRequest::decode(&bytes[..bytes.len() - 2]).is_err());
}
