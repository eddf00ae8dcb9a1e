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

use crate::commands::{agent_cells, agents_by_state, queue_cells, role, AGENT_COLUMNS, QUEUE_COLUMNS};
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
        let total: u32 = h.agents_by_state.values().sum();
        let status = vec![
            Line::from(format!(
                "{} — up {} — {} — journal {}",
                h.status,
                humantime::format_duration(Duration::from_secs(h.uptime_seconds)),
                role(h),
                if h.status == "journal_failed" { "FAILED" } else { "healthy" }
            )),
            Line::from(format!("{} waiting — {total} agents: {}", h.waiting, agents_by_state(h, " · "))),
        ];
        frame.render_widget(Paragraph::new(status).block(Block::bordered().title(self.title.clone())), top);

        let rows = self.queues.iter().map(|q| Row::new(queue_cells(q)));
        let widths = [14, 8, 30, 8, 15, 12, 7, 18, 19, 17].map(Constraint::Length);
        let header = QUEUE_COLUMNS;
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .block(Block::bordered().title(format!(
                " queues (answered, abandoned, SL: the last {}) ",
                humantime::format_duration(Duration::from_secs(self.queues.first().map_or(0, |q| q.window_seconds)))
            )));
        frame.render_widget(table, queues);

        let rows = self.agents.iter().map(|a| Row::new(agent_cells(a)));
        let widths = [10, 10, 12, 9, 6, 6, 6, 40, 20].map(Constraint::Length);
        let header = AGENT_COLUMNS;
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
