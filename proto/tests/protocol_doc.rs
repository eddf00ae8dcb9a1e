//! The worked example of docs/PROTOCOL.md is exactly what the code sends.

use ccr_proto::v1::*;
use ccr_proto::wire;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn example() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let request = EnqueueRequest {
        contact_id: 42,
        channel: Channel::Voice as i32,
        queue: "billing".into(),
        tier: "gold".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 6 }],
        languages: vec!["zh".into()],
        ..Default::default()
    };
    let mut client = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut client);
    wire::encode_message(&request, &mut client);
    let mut ok = Vec::new();
    wire::encode_message(&EnqueueResponse { queue: "billing".into() }, &mut ok);
    wire::encode_trailer(&Status::ok(), &mut ok);
    let mut refused = Vec::new();
    wire::encode_trailer(&Status::new(wire::Code::AlreadyExists, "contact 42 already exists"), &mut refused);
    (client, ok, refused)
}

/// The hex blocks of the document, in order (lines inside ```hex fences).
fn doc_blocks() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).expect("docs/PROTOCOL.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```hex") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(block.trim().to_owned());
                current = None;
            }
            (Some(block), l) => {
                let bytes = l.split('#').next().unwrap_or("").trim();
                if !bytes.is_empty() {
                    block.push_str(bytes);
                    block.push(' ');
                }
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_documented_exchange_is_byte_exact() {
    let (client, ok, refused) = example();
    let blocks = doc_blocks();
    assert_eq!(blocks.len(), 3, "three hex blocks in docs/PROTOCOL.md");
    assert_eq!(blocks[0], hex(&client), "request");
    assert_eq!(blocks[1], hex(&ok), "response");
    assert_eq!(blocks[2], hex(&refused), "refusal");
}

#[test]
#[ignore = "prints the example for the document"]
fn print_example() {
    let (client, ok, refused) = example();
    println!("{}\n{}\n{}", hex(&client), hex(&ok), hex(&refused));
}
