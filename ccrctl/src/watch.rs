//! `ccrctl watch`: a live full-screen view, as `top` gives one: ccrd's
//! status, every queue, and the agents longest in their state, refreshed
//! every `--interval`. `q`, Esc or Ctrl-C quits and gives the terminal back
//! as it was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccr_proto::client::Client;
use ccr_proto::v1 as pb;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use crate::commands::{percent, sorted, span};
use crate::target::Target;
use crate::Failure;

/// Agents read for the list each refresh: one bounded page.
const AGENTS_READ: u32 = 1000;

/// What one refresh shows.
struct View {
    title: String,
    health: pb::HealthResponse,
    queues: Vec<pb::QueueStatsResponse>,
    /// The agents of the first page, longest in their state first.
    agents: Vec<pb::AgentRow>,
}

impl View {
    async fn fetch(client: &Client, target: &Target) -> anyhow::Result<View> {
        let failed = |s: pb::Status| anyhow::Error::from(Failure::of(&s));
        let health = client.health(pb::HealthRequest {}).await.map_err(failed)?;
        let queues = client.queues(pb::QueuesRequest {}).await.map_err(failed)?.queues;
        let page = pb::AgentsRequest { limit: AGENTS_READ, ..Default::default() };
        let mut agents = client.agents(page).await.map_err(failed)?.agents;
        agents.sort_by(|a, b| b.in_state_millis.cmp(&a.in_state_millis).then(a.agent_id.cmp(&b.agent_id)));
        let title = format!(" ccrd {} at {:?} ", health.version, target.addrs);
        Ok(View { title, health, queues, agents })
    }

    fn render(&self, frame: &mut Frame) {
        let [top, queues, agents, help] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Length(self.queues.len() as u16 + 3),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let h = &self.health;
        let role = match h.role.as_str() {
            "single" => "single node".to_owned(),
            role => format!("{role}, active at {} (epoch {})", h.active_address, h.epoch),
        };
        let states = ["available", "reserved", "busy", "wrap_up", "not_ready"];
        let by_state: Vec<String> =
            states.iter().map(|s| format!("{s} {}", h.agents_by_state.get(*s).copied().unwrap_or(0))).collect();
        let total: u32 = h.agents_by_state.values().sum();
        let status = vec![
            Line::from(format!(
                "{} — up {} — {role} — journal {}",
                h.status,
                humantime::format_duration(Duration::from_secs(h.uptime_seconds)),
                if h.status == "journal_failed" { "FAILED" } else { "healthy" }
            )),
            Line::from(format!("{} waiting — {total} agents: {}", h.waiting, by_state.join(" · "))),
        ];
        frame.render_widget(Paragraph::new(status).block(Block::bordered().title(self.title.clone())), top);

        let header = ["QUEUE", "WAITING", "BY TIER", "OLDEST", "SL (WINDOW)", "TARGET", "ANSWERED", "ABANDONED"];
        let rows = self.queues.iter().map(|q| {
            let by_tier: Vec<String> = sorted(&q.waiting_by_tier).iter().map(|(t, n)| format!("{t} {n}")).collect();
            Row::new(vec![
                q.queue.clone(),
                q.waiting_by_tier.values().sum::<u32>().to_string(),
                by_tier.join(", "),
                span(q.oldest_wait_millis),
                q.window_service_level.map_or("-".into(), percent),
                percent(q.service_level_target),
                q.window_answered.to_string(),
                q.window_abandoned.to_string(),
            ])
        });
        let widths = [14, 8, 30, 8, 12, 7, 9, 9].map(Constraint::Length);
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .block(Block::bordered().title(format!(
                " queues (answered, abandoned, SL: the last {}) ",
                humantime::format_duration(Duration::from_secs(self.queues.first().map_or(0, |q| q.window_seconds)))
            )));
        frame.render_widget(table, queues);

        let header = ["AGENT", "STATE", "REASON", "FOR", "VOICE", "CHAT", "EMAIL", "SKILLS"];
        let rows = self.agents.iter().map(|a| {
            let skills: Vec<String> = a.skills.iter().map(|s| format!("{}:{}", s.skill, s.proficiency)).collect();
            Row::new(vec![
                a.agent_id.to_string(),
                a.state.clone(),
                if a.reason.is_empty() { "-".into() } else { a.reason.clone() },
                span(a.in_state_millis),
                format!("{}/{}", a.voice, a.voice_capacity),
                format!("{}/{}", a.chat, a.chat_capacity),
                format!("{}/{}", a.email, a.email_capacity),
                skills.join(","),
            ])
        });
        let widths = [10, 10, 12, 9, 6, 6, 6, 40].map(Constraint::Length);
        let title = format!(" agents, longest in their state first ({} of {total}) ", self.agents.len());
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .block(Block::bordered().title(title));
        frame.render_widget(table, agents);
        frame.render_widget(Paragraph::new("q: quit"), help);
    }
}

fn quits(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
            || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL)))
}

/// Runs the view until a quit key; the terminal is given back on every way
/// out (ratatui's panic hook restores it on a panic).
pub async fn watch(client: &Client, target: &Target, every: Duration) -> anyhow::Result<String> {
    // Keys are read on a thread of their own: the runtime keeps serving the
    // QUIC connection meanwhile.
    let (keys_tx, mut keys) = tokio::sync::mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(50)) {
                    Ok(true) => match event::read() {
                        Ok(Event::Key(key)) if keys_tx.send(key).is_err() => return,
                        Ok(_) => {}
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })
    };
    let mut terminal = ratatui::init();
    let result = refresh(&mut terminal, client, target, every, &mut keys).await;
    ratatui::restore();
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    result.map(|()| String::new())
}

async fn refresh(
    terminal: &mut DefaultTerminal,
    client: &Client,
    target: &Target,
    every: Duration,
    keys: &mut tokio::sync::mpsc::UnboundedReceiver<KeyEvent>,
) -> anyhow::Result<()> {
    loop {
        let view = View::fetch(client, target).await?;
        terminal.draw(|frame| view.render(frame))?;
        let next = tokio::time::sleep(every);
        tokio::pin!(next);
        loop {
            tokio::select! {
                () = &mut next => break,
                key = keys.recv() => match key {
                    Some(key) if quits(&key) => return Ok(()),
                    Some(_) => {}
                    None => return Ok(()),
                },
            }
        }
    }
}
