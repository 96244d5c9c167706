// The structured issue editor, with JavaScript: what is typed is autosaved a few seconds
// after typing stops (and every half minute while it changes), fields the server finds
// wrong are marked, and the preview is reloaded to show the draft. Without it the form is
// plain posts and loses nothing either.
(function () {
  "use strict";
  var form = document.getElementById("issue-form");
  if (!form || !form.dataset.autosave) { return; }
  var status = document.getElementById("autosave-status");
  var frames = document.querySelectorAll(".preview-pane iframe");
  var timer = null, dirty = false, busy = false, version = 0, submitting = false;

  function idOf(name) { return name.replace(/\./g, "-"); }

  function mark(errors) {
    form.querySelectorAll("[data-js-error]").forEach(function (old) { old.remove(); });
    form.querySelectorAll("[data-js-invalid]").forEach(function (field) {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("data-js-invalid");
      var hint = (field.getAttribute("aria-describedby") || "").replace(/\S+-jserror/g, "").trim();
      if (hint) { field.setAttribute("aria-describedby", hint); } else { field.removeAttribute("aria-describedby"); }
    });
    Object.keys(errors || {}).forEach(function (name) {
      var field = document.getElementById(idOf(name));
      if (!field || field.getAttribute("aria-invalid") === "true") { return; }
      var note = document.createElement("p");
      note.className = "field-error";
      note.id = idOf(name) + "-jserror";
      note.setAttribute("data-js-error", "");
      note.textContent = errors[name];
      field.parentNode.insertBefore(note, field);
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("data-js-invalid", "");
      field.setAttribute("aria-describedby", ((field.getAttribute("aria-describedby") || "") + " " + note.id).trim());
    });
  }

  function fill(values) {
    Object.keys(values || {}).forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && field.value !== values[name] && document.activeElement !== field) { field.value = values[name]; }
    });
    // The library selects now show what the form holds: remember it, as a new page would.
    form.querySelectorAll("select[data-library]").forEach(function (select) {
      var was = form.elements.namedItem(select.name + "_was");
      if (was) { was.value = select.value; }
    });
  }

  function save() {
    if (busy) { schedule(); return; }
    busy = true; dirty = false;
    var data = new URLSearchParams(new FormData(form));
    data.delete("op");
    fetch(form.dataset.autosave, {
      method: "POST", body: data, credentials: "same-origin", headers: {"Accept": "application/json"}
    }).then(function (answer) {
      if (answer.redirected) { throw new Error("your login has ended: log in again in another tab"); }
      if (!answer.ok) { throw new Error("the server answered " + answer.status); }
      return answer.json();
    }).then(function (result) {
      fill(result.filled);
      mark(result.errors);
      if (result.valid) {
        status.textContent = "Draft autosaved at " + result.saved_at + " and shown in the preview; save to make it the issue.";
        version += 1;
        frames.forEach(function (frame) { frame.src = form.dataset.preview + "?draft=1&v=" + version; });
      } else {
        var count = Object.keys(result.errors).length;
        status.textContent = "Draft autosaved at " + result.saved_at + "; the preview waits until " + count + (count === 1 ? " marked field is" : " marked fields are") + " corrected.";
      }
    }).catch(function (error) {
      dirty = true;
      status.textContent = "Not autosaved (" + error.message + "): what you typed is still here; save it by hand.";
    }).finally(function () { busy = false; });
  }

  function schedule() {
    dirty = true;
    clearTimeout(timer);
    timer = setTimeout(save, 2500);
  }

  var summary = document.getElementById("problems");
  if (summary) { summary.focus(); }  // a refused save: the list of what to correct first

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener("submit", function () { submitting = true; clearTimeout(timer); });
  setInterval(function () { if (dirty && !busy) { save(); } }, 30000);
  window.addEventListener("beforeunload", function (event) {
    if (dirty && !submitting) { event.preventDefault(); event.returnValue = ""; }
  });
})();
