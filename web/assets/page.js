// The supervisor page's only script: follow the promise event stream, say each event in the
// status line, and fetch the board again (rendered by the server) after a burst of events.
// Without it the page still works: it is plain HTML and forms.
"use strict";
(function () {
  var main = document.getElementById("main");
  var board = document.getElementById("board");
  var said = document.getElementById("said");
  var link = document.getElementById("link");
  if (!main || !board) {
    return;
  }
  // A board costs the daemon a few Redis reads and a forecast per queue: during a burst of
  // events it is fetched at most once a second.
  var minGap = 1000;
  var timer = null;
  var last = 0;

  function refresh() {
    timer = null;
    last = Date.now();
    fetch("/ui/board", { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) {
          window.location.reload();
        }
        if (!r.ok) {
          throw new Error("board " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        // Swapping the board must not lose the keyboard's place: focus goes back to the
        // element of the same id when it is still there.
        var focused = document.activeElement ? document.activeElement.id : "";
        swap(html);
        if (focused) {
          var el = document.getElementById(focused);
          if (el) {
            el.focus();
          }
        }
        main.setAttribute("data-refreshed", String(Number(main.getAttribute("data-refreshed") || "0") + 1));
      })
      .catch(function () { /* the next event or tick tries again */ });
  }

  // swap puts the new board in place of the old. A screen reader reads an alert out each time
  // one is put in the page: problem lines that still say the same stay where they are, or
  // every refresh would announce them again.
  function swap(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var old = board.querySelectorAll(".problem");
    var fresh = tpl.content.querySelectorAll(".problem");
    var same = old.length > 0 && old.length === fresh.length;
    for (var i = 0; same && i < old.length; i++) {
      same = old[i].textContent === fresh[i].textContent && old[i].parentNode === board;
    }
    if (!same) {
      board.innerHTML = html;
      return;
    }
    var mark = document.createComment("problems");
    fresh[0].parentNode.replaceChild(mark, fresh[0]);
    for (var j = 1; j < fresh.length; j++) {
      fresh[j].parentNode.removeChild(fresh[j]);
    }
    Array.prototype.slice.call(board.childNodes).forEach(function (n) {
      if (Array.prototype.indexOf.call(old, n) < 0) {
        board.removeChild(n);
      }
    });
    var nodes = Array.prototype.slice.call(tpl.content.childNodes);
    var at = nodes.indexOf(mark);
    nodes.slice(0, at).forEach(function (n) { board.insertBefore(n, old[0]); });
    nodes.slice(at + 1).forEach(function (n) { board.appendChild(n); });
  }

  function soon() {
    if (timer === null) {
      timer = window.setTimeout(refresh, Math.max(100, last + minGap - Date.now()));
    }
  }

  function say(e) {
    var what = e.type.replace(/_/g, " ");
    said.textContent = "Promise to " + e.number + " in " + e.queue + ": " + what + (e.agent ? " (" + e.agent + ")" : "") + ".";
  }

  function setLink(state, text) {
    link.setAttribute("data-state", state);
    link.textContent = text;
  }

  // The browser reconnects a stream that broke off by itself, with the id of the last event
  // it got. A stream the daemon refused (Redis down, too many pages open) or that a proxy
  // answered for instead, it gives up for good: the page then follows anew, after a while
  // that grows up to the board's refresh, from the last event it got (else from where its
  // board was read), and reads the board again once it follows, for what it may have missed.
  var from = main.getAttribute("data-from") || "";
  var retryGap = 3000;
  var followed = false;

  function follow() {
    var stream = new EventSource("/ui/events" + (from ? "?from=" + encodeURIComponent(from) : ""));
    stream.addEventListener("open", function () {
      retryGap = 3000;
      setLink("on", "live");
      if (followed) {
        soon();
      }
      followed = true;
    });
    stream.addEventListener("error", function () {
      if (stream.readyState !== EventSource.CLOSED) {
        setLink("off", "reconnecting…");
        return;
      }
      stream.close();
      setLink("off", "not live; trying again");
      window.setTimeout(follow, retryGap);
      retryGap = Math.min(2 * retryGap, 30000);
      followed = true;
    });
    stream.addEventListener("promise", function (m) {
      if (m.lastEventId) {
        from = m.lastEventId;
      }
      try {
        say(JSON.parse(m.data));
      } catch (err) { /* a malformed event still means something changed */ }
      soon();
    });
  }

  if (window.EventSource) {
    follow();
  }
  // The time left changes with nothing happening, and a page without a stream still updates.
  window.setInterval(refresh, 30000);

  board.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.classList.contains("cancel") && !window.confirm(form.getAttribute("data-confirm"))) {
      ev.preventDefault();
    }
  });
})();
