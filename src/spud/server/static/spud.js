// Spud's web app: streaming chat (model picker, files, stop, regenerate), the live task view
// with approvals, task cancel.
"use strict";

// An element with text and children; text always goes in as text, never as HTML.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// POST JSON to the API; resolves to the answer, or throws its error message.
async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error((data.error && data.error.message) || `${response.status} ${response.statusText}`);
  }
  return data;
}

// -- chat ------------------------------------------------------------------------------

// Read an OpenAI-style SSE stream, calling onChunk for each JSON data line.
async function readStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue; // ": working" keep-alives
        const data = line.slice(5).trim();
        if (data && data !== "[DONE]") onChunk(JSON.parse(data));
      }
    }
  }
}

function setupChat() {
  const form = document.getElementById("chat-form");
  if (!form) return;
  const transcript = document.getElementById("transcript");
  const status = document.getElementById("chat-status");
  const input = document.getElementById("message");
  const picker = document.getElementById("chat-model");
  const send = form.querySelector("button[type=submit]");
  const stop = document.getElementById("stop-turn");
  const regenerate = document.getElementById("regenerate");
  let session = transcript.dataset.session || null;
  let running = false;

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  function setRunning(now) {
    running = now;
    send.disabled = now;
    stop.disabled = !now || !session; // a new chat can be stopped once its session is known
    const last = transcript.querySelector(".turn:last-child");
    regenerate.disabled = now || !session || !last || !last.classList.contains("assistant");
  }

  function assistantTurn(turn) {
    const answer = el("div", { class: "text" });
    const steps = el("ul", { class: "steps plain muted" }); // each tool step, live
    turn.className = "turn assistant";
    turn.setAttribute("aria-busy", "true");
    turn.replaceChildren(el("span", { class: "who", text: "Spud" }), steps, answer);
    return { turn, answer, steps };
  }

  // One agent turn, streamed: a new message, or (regenerate) the last one answered again.
  async function runTurn(text, again) {
    let shown;
    if (again) {
      shown = assistantTurn(transcript.querySelector(".turn.assistant:last-child"));
    } else {
      transcript.append(
        el("li", { class: "turn user" }, el("span", { class: "who", text: "You" }), el("div", { class: "text", text }))
      );
      shown = assistantTurn(el("li"));
      transcript.append(shown.turn);
    }
    const { turn, answer, steps } = shown;
    let ended = "";
    setRunning(true);
    status.textContent = "Spud is working…";
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          model: transcript.dataset.model,
          spud_model: picker.value || null, // the model picker: this turn's model
          stream: true,
          messages: [{ role: "user", content: text }],
          session_id: session,
          regenerate: again,
        }),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        throw new Error((data.error && data.error.message) || `${response.status} ${response.statusText}`);
      }
      await readStream(response, (chunk) => {
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.spud_step) showStep(steps, chunk.spud_step, status);
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.delta && choice.delta.content) {
          answer.textContent += choice.delta.content;
          if (!stop.dataset.asked) status.textContent = "Spud is answering…";
        }
        if (chunk.spud_status) ended = chunk.spud_status;
        if (chunk.spud_session_id && chunk.spud_session_id !== session) {
          const isNew = !session;
          session = chunk.spud_session_id;
          transcript.dataset.session = session;
          history.replaceState(null, "", `/chat?session=${encodeURIComponent(session)}`);
          if (isNew) addToHistory(session, text);
          stop.disabled = false;
        }
      });
      if (ended === "stopped") {
        turn.classList.add("stopped");
        turn.append(el("p", { class: "badge stopped", text: "Stopped" }));
        status.textContent = "Stopped: the answer so far is kept.";
      } else {
        status.textContent = "Answered.";
      }
    } catch (error) {
      turn.classList.add("failed");
      answer.textContent = answer.textContent || "(no answer)";
      status.textContent = `Error: ${error.message}`;
    } finally {
      renderMarkdownInto(answer); // markdown.js: code blocks and lists, never the model's HTML
      turn.removeAttribute("aria-busy");
      delete stop.dataset.asked;
      setRunning(false);
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    runTurn(text, false);
  });

  regenerate.addEventListener("click", () => {
    const asked = transcript.querySelectorAll(".turn.user .text");
    if (running || !session || !asked.length) return;
    runTurn(asked[asked.length - 1].textContent, true);
  });

  stop.addEventListener("click", async () => {
    if (!session) return;
    stop.disabled = true;
    stop.dataset.asked = "yes";
    status.textContent = "Stopping…";
    try {
      await postJSON(`/api/chat/${encodeURIComponent(session)}/stop`);
    } catch (error) {
      status.textContent = `Error: ${error.message}`; // e.g. the turn had just ended
    }
  });

  setRunning(false);
  setupAttachments(form, status);
}

// Files picked or dropped on the chat: listed, then put into the workspace or learned.
function setupAttachments(form, status) {
  const picker = document.getElementById("chat-files");
  const box = document.getElementById("attachments");
  const list = document.getElementById("attachment-list");
  const zone = document.getElementById("chat");
  const limit = Number(document.getElementById("transcript").dataset.maxFileBytes);
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const pending = []; // {file, item, state}: kept until added or learned, errors and all

  function show(entry, text, kind) {
    entry.state.textContent = text;
    entry.item.className = kind || "";
  }

  function dismissable(entry) {
    entry.drop.textContent = "Dismiss";
    entry.drop.setAttribute("aria-label", `Dismiss ${entry.file.name}`);
  }

  function remove(entry) {
    const at = pending.indexOf(entry);
    if (at >= 0) pending.splice(at, 1);
    entry.item.remove();
    box.hidden = !list.children.length;
  }

  function addFiles(files) {
    for (const file of files) {
      const state = el("span", { class: "state" });
      const item = el("li", {}, el("strong", { text: file.name }), " ", state);
      const drop = el("button", { type: "button", class: "link", text: "Remove", "aria-label": `Remove ${file.name}` });
      const entry = { file, item, state, drop };
      drop.addEventListener("click", () => remove(entry));
      item.append(" ", drop);
      list.append(item);
      if (file.size > limit) {
        show(entry, `is ${(file.size / 1e6).toFixed(1)} MB, over the ${limit / 1e6} MB limit: not sent (your copy is untouched)`, "failed");
        dismissable(entry);
        pending.push(entry);
        entry.tooLarge = true;
      } else {
        show(entry, `(${file.size} bytes) ready`);
        pending.push(entry);
      }
    }
    box.hidden = !list.children.length;
  }

  async function send(action) {
    const buttons = box.querySelectorAll(".buttons button");
    for (const b of buttons) b.disabled = true;
    let done = 0;
    let failed = 0;
    for (const entry of [...pending]) {
      if (entry.tooLarge || entry.item.classList.contains("ok")) continue;
      show(entry, action === "learn" ? "learning…" : "adding…");
      const body = new FormData();
      body.append("file", entry.file);
      body.append("action", action);
      try {
        const response = await fetch("/api/chat/files", { method: "POST", headers: { "X-CSRF-Token": token }, body });
        const data = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error((data.error && data.error.message) || `${response.status} ${response.statusText}`);
        const said = action === "learn"
          ? `learned: ${data.chunks} chunks from ${data.source}${data.new ? "" : " (already known)"}`
          : `added to the workspace as ${data.path}`;
        show(entry, said, "ok");
        dismissable(entry);
        pending.splice(pending.indexOf(entry), 1);
        done += 1;
      } catch (error) {
        show(entry, `not ${action === "learn" ? "learned" : "added"}: ${error.message}`, "failed");
        failed += 1; // it stays in the list: try again, or the other way
      }
    }
    for (const b of buttons) b.disabled = false;
    status.textContent = failed ? `${done} file(s) done, ${failed} failed: see the list.` : `${done} file(s) done.`;
  }

  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = "";
  });
  document.getElementById("add-to-workspace").addEventListener("click", () => send("workspace"));
  document.getElementById("learn-files").addEventListener("click", () => send("learn"));
  // Files only: text dragged into the message box still lands there.
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  zone.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("dropping");
    if (!hasFiles(event)) return;
    event.preventDefault();
    addFiles(event.dataTransfer.files);
  });
}

// A tool step of a spud-agent turn (the stream's spud_step): the calls, then each result.
function showStep(list, step, status) {
  if (step.calls) {
    for (const call of step.calls) list.append(el("li", { class: "step", text: `→ ${call.tool} ${call.args}` }));
    status.textContent = `Spud is using ${step.calls.map((c) => c.tool).join(", ")}…`;
  } else if (step.tool) {
    const line = (step.result || "").split("\n")[0];
    list.append(el("li", { class: step.ok ? "step ok" : "step failed", text: `${step.ok ? "✓" : "✗"} ${step.tool}: ${line}` }));
  }
}

function addToHistory(session, text) {
  const list = document.getElementById("chat-history");
  if (!list) return;
  for (const empty of list.querySelectorAll("li.muted")) empty.remove();
  const title = text.length > 60 ? `${text.slice(0, 57)}...` : text;
  list.prepend(el("li", {}, el("a", { href: `/chat?session=${encodeURIComponent(session)}`, "aria-current": "page", text: title })));
}

// -- the task view ---------------------------------------------------------------------

function diffBlock(diff) {
  const pre = el("pre", { class: "diff" });
  for (const line of diff.split("\n")) {
    let kind = "";
    if (line.startsWith("+") && !line.startsWith("+++")) kind = "add";
    else if (line.startsWith("-") && !line.startsWith("---")) kind = "del";
    else if (line.startsWith("@@")) kind = "hunk";
    pre.append(el("span", { class: kind, text: line }), "\n");
  }
  return pre;
}

function callBlock(call) {
  const block = el("div", { class: "call" }, el("span", { class: "tool", text: call.name }));
  if (call.name === "bash") block.append(el("pre", { class: "command", text: `$ ${call.arguments.command || ""}` }));
  else if (call.name === "finish") block.append(el("div", { class: "text", text: call.arguments.summary || "" }));
  else block.append(el("pre", { class: "args", text: JSON.stringify(call.arguments, null, 1) }));
  return block;
}

function fileURL(path) {
  return `/api/files/download?path=${encodeURIComponent(path)}`;
}

function setupTask() {
  const card = document.getElementById("task");
  if (!card) return;
  const taskId = card.dataset.task;
  const workspace = card.dataset.workspace;
  const canWrite = card.dataset.canWrite === "true";
  const list = document.getElementById("trajectory");
  const statusBadge = document.getElementById("task-status");
  const summary = document.getElementById("task-summary");
  const cancel = document.getElementById("cancel-task");
  const seen = new Set(); // message events already shown (a reconnect may repeat them)
  const approvals = new Map(); // approval id -> its card
  let steps = 0;

  function setStatus(status) {
    statusBadge.textContent = status;
    statusBadge.className = `badge ${status.split(":")[0]}`;
  }

  function show(kind, data, render) {
    const key = `${kind}:${data.index}:${data.tool_call_id || ""}`;
    if (seen.has(key)) return;
    seen.add(key);
    list.append(render());
  }

  function approvalCard(data) {
    const args = data.tool === "bash" ? `$ ${data.arguments.command || ""}` : JSON.stringify(data.arguments, null, 1);
    const state = el("p", { class: "decision", role: "status" });
    const item = el(
      "li",
      { class: "item approval", "aria-label": `Approval for ${data.tool}` },
      el("span", { class: "who", text: `Approval needed: ${data.tool}` }),
      el("pre", { class: "command", text: args }),
      el("p", { class: "muted", text: data.reason }),
      state
    );
    if (canWrite) {
      const buttons = el("div", { class: "buttons" });
      for (const [decision, label] of [["allow", "Approve"], ["deny", "Deny"]]) {
        const button = el("button", { type: "button", class: decision === "deny" ? "secondary" : "", text: label });
        button.addEventListener("click", async () => {
          for (const b of buttons.querySelectorAll("button")) b.disabled = true;
          try {
            const answer = await postJSON(`/api/approvals/${encodeURIComponent(data.id)}`, { decision });
            decided(answer);
          } catch (error) {
            state.textContent = `Error: ${error.message}`;
            for (const b of buttons.querySelectorAll("button")) b.disabled = false;
          }
        });
        buttons.append(button);
      }
      item.append(buttons);
    } else {
      state.textContent = "Waiting for a member or admin to approve.";
    }
    return item;
  }

  function decided(data) {
    const item = approvals.get(data.id);
    if (!item) return;
    const words = { allow: "Approved", deny: "Denied", expired: "Expired (not answered in time)" };
    item.querySelector(".decision").textContent = words[data.status] || data.status;
    item.classList.add(data.status);
    const buttons = item.querySelector(".buttons");
    if (buttons) buttons.remove();
    if (statusBadge.textContent === "waiting") setStatus("running");
  }

  // The browser live view: the latest screenshot, replaced as new ones are taken.
  function showLive(src, d) {
    const view = document.getElementById("live-view");
    if (!view) return;
    const shot = document.getElementById("live-shot");
    shot.src = src;
    shot.alt = `Live view of the browser (${d.image})`;
    document.getElementById("live-caption").textContent = `Step ${steps}: ${d.output.split("\n")[0]}`;
    view.hidden = false;
  }

  const handlers = {
    user(d) {
      show("user", d, () =>
        el("li", { class: "item user" }, el("span", { class: "who", text: d.kind ? "Feedback" : d.index <= 1 ? "Task" : "You" }), el("div", { class: "text", text: d.content }))
      );
    },
    step(d) {
      show("step", d, () => {
        const item = el("li", { class: "item step" }, el("span", { class: "who", text: `Step ${++steps}` }));
        if (d.content) item.append(el("div", { class: "text", text: d.content }));
        if (d.raw) item.append(el("pre", { class: "raw", text: d.raw }));
        for (const call of d.tool_calls) item.append(callBlock(call));
        return item;
      });
    },
    result(d) {
      show("result", d, () => {
        let head = `${d.name} ${d.ok ? "ok" : "failed"}`;
        if (d.approval) head += ` · ${d.approval}`;
        if (d.exit_code !== undefined && d.exit_code !== null) head += ` · exit ${d.exit_code}`;
        const item = el("li", { class: `item result ${d.ok ? "ok" : "failed"}` }, el("span", { class: "who", text: head }), el("pre", { class: "output", text: d.output }));
        if (d.diff) item.append(diffBlock(d.diff));
        if (d.image) {
          const src = fileURL(d.image_file || `${workspace}/${d.image}`);
          item.append(el("img", { class: "shot", src, alt: `Screenshot ${d.image}` }));
          showLive(src, d);
        }
        return item;
      });
    },
    approval(d) {
      if (approvals.has(d.id)) return;
      const item = approvalCard(d);
      approvals.set(d.id, item);
      list.append(item);
      setStatus("waiting");
    },
    approval_decided(d) {
      if (!approvals.has(d.id)) {
        const item = approvalCard(d);
        approvals.set(d.id, item);
        list.append(item);
      }
      decided(d);
    },
    finish(d) {
      setStatus(d.status);
      summary.textContent = d.summary;
      if (cancel) cancel.remove();
      source.close();
      showSession();
    },
  };

  // A task's session exists once it runs: link it when the page was opened before that.
  async function showSession() {
    const facts = card.querySelector(".facts");
    if (facts.querySelector(".session-link")) return;
    const response = await fetch(`/api/tasks/${encodeURIComponent(taskId)}`);
    const task = response.ok ? await response.json() : {};
    if (!task.session_id) return;
    const link = el("a", { href: `/sessions/${encodeURIComponent(task.session_id)}`, text: task.session_id });
    facts.append(el("dt", { text: "Session" }), el("dd", { class: "session-link" }, link));
  }

  const source = new EventSource(`/api/tasks/${encodeURIComponent(taskId)}/events`);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      handle(JSON.parse(event.data));
      if (name !== "finish" && name !== "approval" && statusBadge.textContent === "queued") setStatus("running");
    });
  }
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) summary.textContent = "Lost the live view: reload the page.";
  });

  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const task = await postJSON(`/api/tasks/${encodeURIComponent(taskId)}/cancel`);
        setStatus(task.status);
      } catch (error) {
        summary.textContent = `Error: ${error.message}`;
        cancel.disabled = false;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupChat();
  setupTask();
});
