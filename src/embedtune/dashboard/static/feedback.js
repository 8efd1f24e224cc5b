// The Feedback page: what search feedback is collected, the recent sessions with their
// clicks, and a task that fine-tunes on it (a task without a batch releases the feedback).
// Uses the helpers of app.js (h, fill, api, poll, table, facts, act, when, toast).
"use strict";

function feedbackFacts(summary) {
  const rate = `${(summary.click_through_rate * 100).toFixed(1)}%`;
  const rank = summary.mean_first_click_rank === null ? "—" : summary.mean_first_click_rank.toFixed(2);
  return facts([
    ["Sessions", String(summary.sessions)],
    ["With clicks", String(summary.sessions_with_clicks)],
    ["Marked irrelevant", String(summary.irrelevant_sessions)],
    ["Clicks", String(summary.clicks)],
    ["Distinct queries", String(summary.distinct_queries)],
    ["Distinct documents", String(summary.distinct_documents)],
    ["Click-through rate", rate],
    ["Mean rank of the first click", rank],
  ]);
}

function sessionRow(session) {
  const clicks = session.clicks.map((id) => {
    const rank = session.results.find((result) => result.id === id)?.rank;
    return h("span", { class: "mono" }, `${id} (#${rank})`);
  });
  return h("tr", { "data-session": session.session_id },
    h("td", { class: "mono" }, session.session_id), h("td", {}, session.query),
    h("td", {}, String(session.results.length)),
    h("td", {}, clicks.length ? clicks.flatMap((c, i) => (i ? [", ", c] : [c])) : (session.irrelevant ? "irrelevant" : "—")),
    h("td", { class: "mono" }, session.release_id || "—"), h("td", {}, when(session.created_at)));
}

async function feedbackView(root) {
  const models = await api("GET", "/models?limit=1000");
  const model = h("select", { name: "model" },
    models.items.map((m) => h("option", { value: m.id }, m.id)));
  const summary = h("div", { class: "card" });
  const sessions = h("div", { class: "card" });
  const button = h("button", { type: "submit", class: "primary" }, "Fine-tune on feedback");
  const form = h("form", { class: "card" },
    h("h2", {}, "Fine-tune on feedback"),
    h("p", { class: "muted" }, "Releases everything collected since the last release into a batch ",
      "(clicked results are positives, results skipped above a click hard negatives) and trains on it."),
    h("div", { class: "row" }, field("Model", model), button));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      button.disabled = true;
      try {
        const task = await api("POST", "/fine-tuning/task", { embedding_model_id: model.value });
        location.hash = `#/tasks/${task.id}`;
      } finally {
        button.disabled = false;
      }
    });
  });
  const refresh = async () => {
    const collected = await api("GET", "/feedback");
    const page = await api("GET", "/feedback/sessions?limit=50");
    fill(summary, h("h2", {}, "Collected, not yet released"), feedbackFacts(collected));
    fill(sessions, h("h2", {}, `Recent sessions (${page.total})`),
      table(["Session", "Query", "Results", "Clicks", "Release", "Created"], page.items.map(sessionRow),
        "No feedback yet: send sessions to POST /feedback/sessions."));
    button.disabled = collected.sessions_with_clicks === 0;
  };
  fill(root, h("div", { class: "toolbar" }, h("h1", {}, "Feedback")), summary, form, sessions);
  return poll(refresh);
}
