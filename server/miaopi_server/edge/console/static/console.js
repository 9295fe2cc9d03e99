// Live alerts on the supervision page: an EventSource on the alert stream (the cursor is
// the last alert shown; the browser resumes from Last-Event-ID when it reconnects).
"use strict";
(function () {
  var list = document.getElementById("alerts");
  if (!list || !window.EventSource) { return; }
  var url = list.dataset.stream + "?after=" + encodeURIComponent(list.dataset.after || "0");
  var source = new EventSource(url);
  source.addEventListener("alert", function (event) {
    var a = JSON.parse(event.data);
    if (list.querySelector('[data-seq="' + a.seq + '"]')) { return; }
    var item = document.createElement("li");
    item.className = "alert kind-" + a.kind + " fresh";
    item.dataset.seq = String(a.seq);
    var badge = document.createElement("span");
    badge.className = "badge kind-" + a.kind;
    badge.textContent = a.kind_label;
    var link = document.createElement("a");
    link.href = "/cases/" + encodeURIComponent(a.decision_id);
    link.textContent = a.item_code + " · " + a.decision_id.slice(0, 8) + "…";
    var dept = document.createElement("span");
    dept.textContent = a.department;
    item.append(badge, " ", link, " ", dept);
    if (a.due_date) {
      var due = document.createElement("span");
      due.textContent = " 期限 " + a.due_date;
      item.append(due);
    }
    var when = document.createElement("small");
    when.textContent = " " + a.raised_at;
    item.append(when);
    list.prepend(item);
  });
}());
