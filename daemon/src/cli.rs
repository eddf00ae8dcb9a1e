//! What the command-line tools (`ccrd`, `ccrctl`, `ccr-loadgen`) hold each
//! other to: every flag and argument says in `--help` what it is.

/// The flags and arguments of `command` and its subcommands that have no
/// help text, as "command subcommand flag".
pub fn undocumented_flags(command: &clap::Command) -> Vec<String> {
    fn walk(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if arg.get_help().is_none() && arg.get_long_help().is_none() && !builtin {
                out.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(command, command.get_name(), &mut out);
    out
}
