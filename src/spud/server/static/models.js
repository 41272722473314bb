// The models page: running pulls show their progress, and the page reloads when one ends.
"use strict";

function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function watchPulls() {
  const shown = document.querySelectorAll("[data-pull]");
  if (!shown.length) return;
  try {
    const response = await fetch("/api/models/pulls", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const jobs = await response.json();
    for (const box of shown) {
      const job = jobs.find((j) => j.name === box.dataset.pull);
      if (!job || job.state !== "running") { window.location.reload(); return; }
      const bar = box.querySelector("progress");
      const text = box.querySelector(".pull-text");
      if (job.total) {
        bar.max = job.total;
        bar.value = job.done;
        text.textContent = `${formatBytes(job.done)} of ${formatBytes(job.total)}`;
      }
    }
  } catch (error) {
    // the server restarted or the network blinked: try again on the next tick
  }
  window.setTimeout(watchPulls, 1000);
}

document.addEventListener("DOMContentLoaded", watchPulls);
