// Markdown for chat answers, built as DOM nodes and never parsed as HTML: a model's raw HTML
// stays visible text. Fenced code, paragraphs, lists, quotes, headings; inline code, bold,
// italic and http(s) links.
"use strict";

const INLINE =
  /`([^`\n]+)`|\*\*([^*\n]+)\*\*|__([^_\n]+)__|\*([^*\s](?:[^*\n]*[^*\s])?)\*|\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)|(https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]])/g;
const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/;

function mdNode(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function mdLink(text, href) {
  const a = mdNode("a");
  a.href = href; // only http(s), by the pattern
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  a.textContent = text;
  return a;
}

// Append text with inline markdown to parent.
function mdInline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[1] !== undefined) {
      const code = mdNode("code");
      code.textContent = m[1];
      parent.append(code);
    } else if (m[2] !== undefined || m[3] !== undefined) {
      parent.append(mdInline(mdNode("strong"), m[2] ?? m[3]));
    } else if (m[4] !== undefined) {
      parent.append(mdInline(mdNode("em"), m[4]));
    } else if (m[5] !== undefined) {
      parent.append(mdLink(m[5], m[6]));
    } else {
      parent.append(mdLink(m[7], m[7]));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
  return parent;
}

function mdLines(parent, lines) {
  lines.forEach((line, i) => {
    if (i) parent.append(mdNode("br"));
    mdInline(parent, line);
  });
  return parent;
}

// A document fragment for the markdown text.
function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  const blockStart = (line) =>
    FENCE.test(line) || LIST_ITEM.test(line) || /^(#{1,6})\s/.test(line) || /^\s*>/.test(line);
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (a block still streaming has none yet)
      const pre = mdNode("pre", "code");
      const code = mdNode("code");
      code.textContent = body.join("\n");
      if (fence[2]) {
        pre.dataset.lang = fence[2];
        pre.setAttribute("aria-label", `${fence[2]} code`);
      }
      pre.append(code);
      out.append(pre);
    } else if (!line.trim()) {
      i++;
    } else if (/^(#{1,6})\s/.test(line)) {
      out.append(mdInline(mdNode("p", "md-heading"), line.replace(/^#{1,6}\s+/, "")));
      i++;
    } else if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ""));
      const quote = mdNode("blockquote");
      quote.append(renderMarkdown(quoted.join("\n")));
      out.append(quote);
    } else if (LIST_ITEM.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const list = mdNode(ordered ? "ol" : "ul");
      while (i < lines.length && LIST_ITEM.test(lines[i])) {
        const item = mdNode("li");
        const parts = [lines[i++].match(LIST_ITEM)[2]];
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !LIST_ITEM.test(lines[i])) parts.push(lines[i++].trim());
        list.append(mdLines(item, parts));
      }
      out.append(list);
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !(para.length && blockStart(lines[i]))) para.push(lines[i++]);
      out.append(mdLines(mdNode("p"), para));
    }
  }
  return out;
}

// Replace a node's text with its markdown rendering.
function renderMarkdownInto(node) {
  const text = node.textContent;
  node.replaceChildren(renderMarkdown(text));
  node.classList.add("md");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const node of document.querySelectorAll(".turn.assistant .text")) renderMarkdownInto(node);
});
