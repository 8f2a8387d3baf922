// dtc status page: refresh, the token field, and the retry / resolve buttons. Vanilla JS, no
// external code; the page reads the same without it.
(function () {
  "use strict";
  var KEY = "dtc-admin-token";
  var body = document.body;
  body.classList.add("js");
  var token = function () { return sessionStorage.getItem(KEY) || ""; };
  var headers = function (extra) {
    var h = extra || {};
    if (token()) { h.Authorization = "Bearer " + token(); }
    return h;
  };
  var say = function (text, bad) {
    var m = document.getElementById("msg");
    m.textContent = text;
    m.className = bad ? "bad" : "ok";
  };
  // Someone typing a reason must not lose it to a refresh.
  var busy = function () {
    var a = document.activeElement;
    if (a && a.tagName === "INPUT") { return true; }
    var inputs = document.querySelectorAll("main input");
    for (var i = 0; i < inputs.length; i++) { if (inputs[i].value) { return true; } }
    return false;
  };
  var refresh = function () {
    return fetch(location.pathname + location.search, { headers: headers({ Accept: "text/html" }) })
      .then(function (r) {
        return r.text().then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById("main");
          if (fresh) { document.getElementById("main").replaceWith(fresh); }
          if (r.status === 401) { body.setAttribute("data-locked", "1"); }
          else { body.removeAttribute("data-locked"); }
        });
      })
      .catch(function (e) { say("refresh failed: " + e, true); });
  };
  document.getElementById("token").addEventListener("submit", function (e) {
    e.preventDefault();
    var field = e.target.elements.token;
    sessionStorage.setItem(KEY, field.value.trim());
    field.value = "";
    refresh().then(function () {
      say(body.hasAttribute("data-locked") ? "that token is wrong" : "token saved for this tab",
        body.hasAttribute("data-locked"));
    });
  });
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-act]");
    if (!button) { return; }
    var id = button.getAttribute("data-txn");
    var act = button.getAttribute("data-act");
    var payload = "";
    if (act === "resolve") {
      var input = document.querySelector('input[data-reason-for="' + CSS.escape(id) + '"]');
      var reason = input ? input.value.trim() : "";
      if (!reason) {
        say("say why " + id + " is resolved (the reason is recorded)", true);
        if (input) { input.focus(); }
        return;
      }
      payload = JSON.stringify({ reason: reason });
    }
    button.disabled = true;
    fetch("/transactions/" + encodeURIComponent(id) + "/" + act, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: payload,
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok) {
          var done = act === "resolve" ? "resolved: " + j.resolution : "re-driven, now " + j.state;
          say(id + " " + done, false);
        } else {
          say(id + ": " + act + " refused (" + r.status + "): " + (j.detail || r.statusText), true);
        }
        if (document.activeElement) { document.activeElement.blur(); }
        var row = document.getElementById("txn-" + id);
        if (row && r.ok) { row.querySelectorAll("input").forEach(function (i) { i.value = ""; }); }
        return refresh();
      });
    }).catch(function (err) {
      button.disabled = false;
      say(id + ": " + act + " failed: " + err, true);
    });
  });
  var every = Number(body.getAttribute("data-refresh-ms")) || 5000;
  setInterval(function () { if (!busy()) { refresh(); } }, every);
  if (body.hasAttribute("data-locked") && token()) { refresh(); }
})();
