// 信用办控制台: subject lookup and the loop report, plain JavaScript, no build step.
// The key stays in this tab (sessionStorage); every call sends it as a Bearer token.
"use strict";

const $ = (id) => document.getElementById(id);
const LIST_STATUS = {
  active: "有效", objection_pending: "异议处理中", repaired: "已修复",
  revoked: "已撤销", expired: "已届满",
};
const VERDICTS = { restricted: "限制", attention: "关注", incentive: "激励", clear: "无" };

function key() { return sessionStorage.getItem("gateway-key") || ""; }

async function call(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key()}` } });
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fail(element, error) {
  element.textContent = error.message;
  element.hidden = false;
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("gateway-key", $("key").value.trim());
  $("key").value = "";
  $("key-state").textContent = "已设置";
});

$("subject-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("subject-error").hidden = true;
  $("subject").hidden = true;
  const uscc = $("uscc").value.trim();
  try {
    const subject = await (await call(`/v1/subjects/${encodeURIComponent(uscc)}?checks=10`)).json();
    const entries = $("entries").tBodies[0];
    entries.replaceChildren();
    for (const entry of subject.entries) {
      const row = entries.insertRow();
      cell(row, entry.list_type_name || entry.list_type);
      cell(row, entry.subject_name);
      cell(row, entry.authority);
      cell(row, LIST_STATUS[entry.status] || entry.status);
      cell(row, entry.listed_on);
      cell(row, entry.expires_on);
      cell(row, entry.document_no);
      cell(row, (entry.history || []).map((h) => `${(h.changed_at || "").slice(0, 10)} ${LIST_STATUS[h.status] || h.status || ""}`).join("；"));
    }
    $("entry-count").textContent = `（${subject.entries.length}）`;
    const grade = subject.grade;
    $("grade").textContent = grade ? `${grade.value}（${grade.source || ""} ${grade.as_of || ""}）` : "无";
    const checks = $("checks").tBodies[0];
    checks.replaceChildren();
    for (const check of subject.recent_checks) {
      const row = checks.insertRow();
      cell(row, check.checked_at.replace("T", " ").slice(0, 19));
      cell(row, check.matter);
      cell(row, VERDICTS[check.verdict] || check.verdict, `verdict-${check.verdict}`);
      cell(row, check.measures.filter((m) => m.state === "apply").map((m) => m.code).join("、"));
      const feedback = cell(row, "…");
      call(`/v1/checks/${check.check_id}`).then((r) => r.json()).then((full) => {
        const fb = full.feedback;
        feedback.textContent = fb
          ? `已反馈：执行 ${fb.measures.filter((m) => m.executed).length}，未执行 ${fb.measures.filter((m) => !m.executed).length}`
          : (check.measures.some((m) => m.state === "apply") ? "待反馈" : "无需反馈");
      }).catch((error) => { feedback.textContent = error.message; });
    }
    $("subject").hidden = false;
  } catch (error) {
    fail($("subject-error"), error);
  }
});

function reportQuery(format) {
  const params = new URLSearchParams({
    from: $("from").value, to: $("to").value, group_by: $("group-by").value,
  });
  if (format) params.set("format", format);
  return `/v1/reports/loop?${params}`;
}

function drawChart(rows) {
  const svg = $("chart");
  const shown = rows.slice(0, 12);
  const width = 720, barHeight = 22, label = 220;
  const max = Math.max(1, ...shown.map((r) => r.checks));
  svg.setAttribute("viewBox", `0 0 ${width} ${shown.length * barHeight + 10}`);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  shown.forEach((row, i) => {
    const y = i * barHeight + 4;
    const scale = (n) => ((width - label - 150) * n) / max;
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 0); text.setAttribute("y", y + 14);
    text.textContent = row.key.length > 18 ? `${row.key.slice(0, 17)}…` : row.key;
    const checks = document.createElementNS(ns, "rect");
    checks.setAttribute("class", "checks"); checks.setAttribute("x", label);
    checks.setAttribute("y", y); checks.setAttribute("height", 9);
    checks.setAttribute("width", scale(row.checks));
    const pending = document.createElementNS(ns, "rect");
    pending.setAttribute("class", "pending"); pending.setAttribute("x", label);
    pending.setAttribute("y", y + 10); pending.setAttribute("height", 7);
    pending.setAttribute("width", scale(row.feedback_pending));
    const count = document.createElementNS(ns, "text");
    count.setAttribute("x", label + scale(row.checks) + 4); count.setAttribute("y", y + 9);
    count.textContent = `${row.checks}（待反馈 ${row.feedback_pending}）`;
    svg.append(text, checks, pending, count);
  });
}

$("report-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("report-error").hidden = true;
  try {
    const report = await (await call(reportQuery())).json();
    const body = $("report-table").tBodies[0];
    body.replaceChildren();
    for (const r of report.rows) {
      const row = body.insertRow();
      cell(row, r.key);
      for (const n of [r.checks, r.hits, r.measures_applied, r.feedback_received, r.executed,
        r.not_executed, r.feedback_pending, r.feedback_overdue]) cell(row, n, "num");
    }
    drawChart(report.rows);
    $("report").hidden = false;
  } catch (error) {
    fail($("report-error"), error);
  }
});

$("report-csv").addEventListener("click", async () => {
  try {
    const blob = await (await call(reportQuery("csv"))).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `loop-${$("group-by").value}-${$("from").value}-${$("to").value}.csv`;
    link.click();
  } catch (error) {
    fail($("report-error"), error);
  }
});

(function defaults() {
  const today = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
  const start = new Date(Date.now() + 8 * 3600 * 1000 - 29 * 86400 * 1000).toISOString().slice(0, 10);
  $("from").value = start;
  $("to").value = today;
  if (key()) $("key-state").textContent = "已设置";
})();
