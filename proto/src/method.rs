//! Every RPC of `ccr.v1`, by path: the one list that the server, the client,
//! the metrics labels and the role checks share.

/// The services, whose methods a role may call.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Service {
    Gateway,
    AgentDesk,
    Events,
    Admin,
}

macro_rules! methods {
    ($($variant:ident => ($service:ident, $path:literal),)*) => {
        /// One RPC of `ccr.v1`.
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        pub enum Method {
            $($variant,)*
        }

        impl Method {
            /// Every method, in the order of the schema.
            pub const ALL: &'static [Method] = &[$(Method::$variant,)*];

            /// `/ccr.v1.<Service>/<Method>`, as written in a stream's header.
            pub const fn path(self) -> &'static str {
                match self {
                    $(Method::$variant => $path,)*
                }
            }

            pub const fn service(self) -> Service {
                match self {
                    $(Method::$variant => Service::$service,)*
                }
            }

            /// The method a header names, if it is one of ours.
            pub fn from_path(path: &str) -> Option<Method> {
                match path {
                    $($path => Some(Method::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    Enqueue => (Gateway, "/ccr.v1.Gateway/Enqueue"),
    Abandon => (Gateway, "/ccr.v1.Gateway/Abandon"),
    Transfer => (Gateway, "/ccr.v1.Gateway/Transfer"),
    ScheduleCallback => (Gateway, "/ccr.v1.Gateway/ScheduleCallback"),
    Position => (Gateway, "/ccr.v1.Gateway/Position"),
    GatewayStream => (Gateway, "/ccr.v1.Gateway/Stream"),
    Login => (AgentDesk, "/ccr.v1.AgentDesk/Login"),
    Logout => (AgentDesk, "/ccr.v1.AgentDesk/Logout"),
    SetState => (AgentDesk, "/ccr.v1.AgentDesk/SetState"),
    Accept => (AgentDesk, "/ccr.v1.AgentDesk/Accept"),
    Reject => (AgentDesk, "/ccr.v1.AgentDesk/Reject"),
    Complete => (AgentDesk, "/ccr.v1.AgentDesk/Complete"),
    EndWrapUp => (AgentDesk, "/ccr.v1.AgentDesk/EndWrapUp"),
    Subscribe => (Events, "/ccr.v1.Events/Subscribe"),
    QueueStats => (Admin, "/ccr.v1.Admin/QueueStats"),
    Health => (Admin, "/ccr.v1.Admin/Health"),
    ReloadConfig => (Admin, "/ccr.v1.Admin/ReloadConfig"),
    Drain => (Admin, "/ccr.v1.Admin/Drain"),
    Queues => (Admin, "/ccr.v1.Admin/Queues"),
    Agents => (Admin, "/ccr.v1.Admin/Agents"),
    Contacts => (Admin, "/ccr.v1.Admin/Contacts"),
    Contact => (Admin, "/ccr.v1.Admin/Contact"),
    SuperviseAgent => (Admin, "/ccr.v1.Admin/SuperviseAgent"),
    SuperviseContact => (Admin, "/ccr.v1.Admin/SuperviseContact"),
}

impl Method {
    /// An `Admin` call that only reads: what the read-only supervisor role
    /// may make.
    pub const fn is_view(self) -> bool {
        matches!(
            self,
            Method::Health | Method::QueueStats | Method::Queues | Method::Agents | Method::Contacts | Method::Contact
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_names_its_own_method_and_service() {
        for &m in Method::ALL {
            assert_eq!(Method::from_path(m.path()), Some(m));
            let service = m.path().trim_start_matches("/ccr.v1.").split('/').next().unwrap();
            assert_eq!(format!("{:?}", m.service()), service);
        }
        assert_eq!(Method::from_path("/ccr.v1.Gateway/Teleport"), None);
    }

    /// The schema's services and methods are exactly these.
    #[test]
    fn the_list_matches_the_schema() {
        let schema = include_str!("../ccr/v1/ccr.proto");
        let mut in_schema = Vec::new();
        let mut service = "";
        for line in schema.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches(" {").trim();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim();
                in_schema.push(format!("/ccr.v1.{service}/{name}"));
            }
        }
        let ours: Vec<String> = Method::ALL.iter().map(|m| m.path().to_owned()).collect();
        assert_eq!(ours.len(), in_schema.len());
        for path in &in_schema {
            assert!(ours.contains(path), "{path} is in the schema but not in Method");
        }
    }
}
