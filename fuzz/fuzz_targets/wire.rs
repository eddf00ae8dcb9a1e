//! Arbitrary bytes as a request stream: the header and frame decoders and
//! every request message type must refuse bad input without panicking, and
//! never accept a frame longer than the limit.
//!
//! cargo fuzz run -s none -O wire -- -max_total_time=600
#![no_main]

use ccr_proto::v1::*;
use ccr_proto::wire::{decode_frame, decode_header, Frame};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const LIMIT: usize = 4096;

fn decode_all(body: &[u8]) {
    let _ = EnqueueRequest::decode(body);
    let _ = TransferRequest::decode(body);
    let _ = ScheduleCallbackRequest::decode(body);
    let _ = LoginRequest::decode(body);
    let _ = SetStateRequest::decode(body);
    let _ = AcceptRequest::decode(body);
    let _ = SubscribeRequest::decode(body);
    let _ = QueueStatsRequest::decode(body);
    let _ = RoutingEvent::decode(body);
}

fuzz_target!(|data: &[u8]| {
    let mut at = match decode_header(data) {
        Ok(Some((method, used))) => {
            assert!(!method.is_empty() && used <= data.len());
            used
        }
        _ => 0,
    };
    while let Ok(Some((frame, used))) = decode_frame(&data[at..], LIMIT) {
        assert!(used >= 5 && used - 5 <= LIMIT);
        if let Frame::Message(body) = frame {
            decode_all(&body);
        }
        at += used;
    }
});
