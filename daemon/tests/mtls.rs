//! Client certificates: required when a client CA is configured, and the
//! certificate's OU decides which services a client may call.

use std::time::Duration;

use ccr_daemon::loopback::Loopback;
use ccr_daemon::{config, tls};
use ccr_proto::client::Client;
use ccr_proto::v1::*;
use ccr_proto::wire::Code;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::time::timeout;

const CONFIG: &str = r#"
skills = ["billing"]
[[queues]]
name = "sales"
"#;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "ccr test clients CA");
    let cert = params.self_signed(&key).unwrap();
    Ca { der: cert.der().to_vec(), issuer: Issuer::new(params, key) }
}

/// A client certificate chain and PKCS#8 key with the given OU.
fn client_identity(ca: &Ca, ou: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, format!("{ou} client"));
    params.distinguished_name.push(DnType::OrganizationalUnitName, ou);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (vec![cert.der().to_vec()], key.serialize_der())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_roles_enforced() {
    let dir = std::env::temp_dir().join(format!("ccrd-mtls-{}", std::process::id()));
    let mut config = config::parse(CONFIG).unwrap();
    config.server.data_dir = dir.clone();
    let ca = ca();
    let ca_path = dir.join("clients-ca.der");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&ca_path, &ca.der).unwrap();
    config.tls.client_ca = Some(ca_path.clone());
    let daemon = Loopback::start(config, Some(tls::client_ca(&ca_path).unwrap()), false).await.unwrap();
    let addr = daemon.addr;
    let server_cert = daemon.cert.clone();
    let roots = std::slice::from_ref(&server_cert);

    // No certificate: the handshake or the first call fails.
    let anonymous = timeout(Duration::from_secs(5), async {
        match Client::connect(addr, "localhost", roots).await {
            Err(_) => true,
            Ok(c) => c.health(HealthRequest {}).await.is_err(),
        }
    })
    .await
    .unwrap();
    assert!(anonymous, "a client without a certificate was served");

    // A certificate from another CA is refused too.
    let stranger = client_identity(&self::ca(), "gateway");
    let refused = timeout(Duration::from_secs(5), async {
        match Client::connect_with_identity(addr, "localhost", roots, Some(stranger)).await {
            Err(_) => true,
            Ok(c) => c.health(HealthRequest {}).await.is_err(),
        }
    })
    .await
    .unwrap();
    assert!(refused, "a certificate from an unknown CA was accepted");

    let gateway =
        Client::connect_with_identity(addr, "localhost", roots, Some(client_identity(&ca, "gateway"))).await.unwrap();
    let agent =
        Client::connect_with_identity(addr, "localhost", roots, Some(client_identity(&ca, "agent"))).await.unwrap();
    let enqueue = EnqueueRequest {
        contact_id: 1,
        channel: Channel::Voice as i32,
        queue: "sales".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        ..Default::default()
    };
    gateway.enqueue(enqueue.clone()).await.unwrap();
    let login = LoginRequest { agent_id: 1, voice_capacity: 1, ready: true, ..Default::default() };
    assert_eq!(gateway.login(login.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(
        agent.enqueue(EnqueueRequest { contact_id: 2, ..enqueue }).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(agent.health(HealthRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
    agent
        .login(LoginRequest { skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }], ..login })
        .await
        .unwrap();

    // A supervisor's screen reads the views and changes nothing.
    let supervisor = Client::connect_with_identity(addr, "localhost", roots, Some(client_identity(&ca, "supervisor")))
        .await
        .unwrap();
    assert_eq!(supervisor.health(HealthRequest {}).await.unwrap().waiting, 0, "contact 1 went to agent 1");
    assert_eq!(supervisor.agents(AgentsRequest::default()).await.unwrap().agents.len(), 1);
    assert_eq!(supervisor.queues(QueuesRequest {}).await.unwrap().queues.len(), 1);
    let contacts = ContactsRequest { queue: "sales".into(), ..Default::default() };
    supervisor.contacts(contacts).await.unwrap();
    let act = SuperviseAgentRequest { agent_id: 1, action: "logout".into(), ..Default::default() };
    assert_eq!(supervisor.supervise_agent(act).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(supervisor.drain(DrainRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(supervisor.reload_config(ReloadConfigRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
    let enqueue = EnqueueRequest { contact_id: 3, ..Default::default() };
    assert_eq!(supervisor.enqueue(enqueue).await.unwrap_err().code(), Code::PermissionDenied);

    drop((gateway, agent, supervisor));
    timeout(Duration::from_secs(10), daemon.stop()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
