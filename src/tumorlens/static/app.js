// tumorlens page. Plain JavaScript, no build step, no external resources.
// Every text that comes from a file or the server is set with textContent (never parsed as HTML).
"use strict";

(function () {
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  const statusEl = document.getElementById("status");
  const cards = document.getElementById("cards");
  const tpl = document.getElementById("card-tpl");
  const clearBtn = document.getElementById("clear");
  const modelInfo = document.getElementById("model-info");
  const BROWSER_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"];
  let model = null;
  let limitBytes = 20 * 1024 * 1024;
  let cardCount = 0;
  const queue = [];
  let busy = false;

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function pct(p) {
    return (100 * p).toFixed(1) + " %";
  }

  // ---------------------------------------------------------------- model information (footer)
  fetch("/api/model", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
    .then((info) => {
      model = info;
      if (info.limits && info.limits.max_upload_mb) {
        limitBytes = info.limits.max_upload_mb * 1024 * 1024;
      }
      const parts = ["tumorlens " + info.version, "model sha256 " + String(info.sha256).slice(0, 16) + "...",
        "classes: " + info.classes.join(", ")];
      if (info.abstention && typeof info.abstention.threshold === "number") {
        parts.push("abstains below " + pct(info.abstention.threshold) + " confidence");
      }
      if (info.limits) {
        parts.push("upload limit " + info.limits.max_upload_mb + " MiB per request (this page sends each file " +
          "in its own request)");
      }
      modelInfo.textContent = parts.join(" \u00b7 ");
    })
    .catch(() => { modelInfo.textContent = "Model information unavailable."; });

  // ---------------------------------------------------------------- cards
  function newCard(title) {
    const node = tpl.content.firstElementChild.cloneNode(true);
    node.querySelector(".card-title").textContent = title;
    cards.appendChild(node);
    clearBtn.hidden = false;
    return node;
  }

  function setBadge(card, status, text) {
    const b = card.querySelector(".badge");
    b.className = "badge " + status;
    b.textContent = text || status;
  }

  function setReason(card, status, text) {
    const r = card.querySelector(".reason");
    r.className = "reason " + status;
    r.textContent = text;
    r.hidden = !text;
  }

  function where(rec) {
    if (rec.slice !== undefined && rec.slice !== null) return " (slice " + rec.slice + ")";
    if (rec.frame !== undefined && rec.frame !== null) return " (frame " + rec.frame + ")";
    return "";
  }

  function fillCard(card, rec, file) {
    const n = ++cardCount;
    // the browser's own name of the file: the server's copy is shortened to its last 120 characters after the
    // last slash, so two long names that differ early, or "left\\scan.jpg" and "right\\scan.jpg", looked alike
    const name = file ? file.name : rec.path;
    card.querySelector(".card-title").textContent = name + where(rec);
    setBadge(card, rec.status);
    const reasonText = {
      rejected: "Rejected: ", error: "Could not analyse: ", uncertain: "Uncertain: "
    }[rec.status];
    setReason(card, rec.status, rec.reason ? (reasonText || "") + rec.reason : "");

    const views = card.querySelector(".views");
    const orig = card.querySelector(".original");
    const overlayFig = card.querySelector(".stack").parentElement;
    const label = name + where(rec);
    if (rec.image_png) {
      const src = "data:image/png;base64," + rec.image_png;
      orig.src = src;
      orig.alt = "Uploaded image " + label;
      card.querySelector(".base").src = src;
      card.querySelector(".base").alt = "";
      views.hidden = false;
    } else if (file && BROWSER_IMAGES.includes(file.type)) {
      orig.src = URL.createObjectURL(file);
      orig.alt = "Uploaded image " + label;
      overlayFig.hidden = true;
      views.hidden = false;
    }
    if (rec.heatmap_png) {
      const heat = card.querySelector(".heat");
      heat.src = "data:image/png;base64," + rec.heatmap_png;
      const method = rec.heatmap_method || "heatmap";
      heat.alt = method + " heatmap for the class " + rec.label + " over " + label;
      // name the method that made the map, and say when it found nothing: an empty overlay would otherwise
      // read as "no tumour here" rather than "this method found no evidence for the class"
      // what the map is of: a map for "notumor" marks what drove that answer, not a lesion; an uncertain
      // record's map is of a class the model did not answer
      let caption = rec.heatmap_empty
        ? "Heatmap (" + method + ") is empty: no evidence for " + rec.label + " by this method"
        : "Heatmap overlay (" + method + " map for " + rec.label + ")";
      if (!rec.heatmap_empty && rec.label === "notumor") {
        caption += ": the regions behind the 'no tumour' answer, not a lesion";
      }
      if (rec.status === "uncertain") {
        caption += "; the model gave no answer, this is the most likely class only";
      }
      card.querySelector(".heat-caption").textContent = caption;
      const box = card.querySelector(".opacity");
      const range = box.querySelector(".opacity-range");
      const out = box.querySelector(".opacity-out");
      const lab = box.querySelector(".opacity-label");
      range.id = "opacity-" + n;
      lab.htmlFor = range.id;
      out.htmlFor = range.id;
      const apply = () => {
        heat.style.opacity = String(range.value / 100);
        out.textContent = range.value + " %";
        range.setAttribute("aria-valuetext", range.value + " percent");
      };
      range.addEventListener("input", apply);
      apply();
      box.hidden = false;
    } else {
      overlayFig.hidden = true;
    }

    if (rec.probabilities) {
      const probs = card.querySelector(".probs");
      const ul = probs.querySelector(".bars");
      const classes = (model && model.classes) || Object.keys(rec.probabilities);
      for (const c of classes) {
        const p = rec.probabilities[c];
        if (typeof p !== "number") continue;
        const li = document.createElement("li");
        // the answered class stands out; an uncertain record's top class is marked, not in the answer's colour
        li.className = "bar-row" + (c === rec.label ? (rec.status === "ok" ? " best" : " top") : "");
        const name = document.createElement("span");
        name.textContent = c;
        const track = document.createElement("span");
        track.className = "bar-track";
        track.setAttribute("aria-hidden", "true");
        const fill = document.createElement("span");
        fill.className = "bar-fill";
        fill.style.width = Math.max(0, Math.min(100, 100 * p)).toFixed(1) + "%";
        track.appendChild(fill);
        const val = document.createElement("span");
        val.className = "bar-val";
        val.textContent = pct(p);
        li.append(name, track, val);
        ul.appendChild(li);
      }
      const ans = probs.querySelector(".answer");
      if (rec.status === "ok") {
        ans.textContent = "Model output: " + rec.label + " (calibrated confidence " + pct(rec.confidence) + ").";
      } else if (rec.status === "uncertain") {
        const need = model && model.abstention && typeof model.abstention.threshold === "number"
          ? ", below the " + pct(model.abstention.threshold) + " needed for an answer" : "";
        ans.textContent = "No answer: the most likely class, " + rec.label + ", has only " + pct(rec.confidence) +
          " confidence" + need + ".";
      }
      probs.hidden = false;
    }
  }

  function failCard(card, detail) {
    setBadge(card, "error");
    setReason(card, "error", "Could not analyse: " + detail);
  }

  // ---------------------------------------------------------------- upload, one file per request
  async function analyse(file, card) {
    if (file.size > limitBytes) {
      failCard(card, "the file is larger than the server's upload limit (" + (limitBytes / 1048576) + " MiB).");
      return [card];
    }
    const body = new FormData();
    body.append("files", file, file.name);
    let resp;
    try {
      resp = await fetch("/api/predict?explain=true", { method: "POST", body: body });
    } catch (e) {
      failCard(card, "the tumorlens server did not answer (" + e.message + ").");
      return [card];
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : "HTTP " + resp.status;
      failCard(card, detail);
      return [card];
    }
    if (!Array.isArray(data) || data.length === 0) {
      failCard(card, "the server gave no result.");
      return [card];
    }
    // one card per record: a DICOM or NIfTI file can give several slices
    let target = card;
    const filled = [card];
    data.forEach((rec, i) => {
      if (i > 0) {
        const next = tpl.content.firstElementChild.cloneNode(true);
        target.after(next);
        target = next;
        filled.push(next);
        fillCard(next, rec, file);
      } else {
        fillCard(card, rec, file);
      }
    });
    return filled;
  }

  async function pump() {
    if (busy) return;
    busy = true;
    let done = 0;
    const mine = [];  // the cards of this run only: earlier runs' cards stay on the page but are not counted
    while (queue.length) {
      const [file, card] = queue.shift();
      setStatus("Analysing " + file.name + " (" + (queue.length + 1) + " left)...");
      mine.push(...(await analyse(file, card)));
      done += 1;
    }
    busy = false;
    if (!done || !cards.children.length) return;  // nothing to sum up (or Clear was pressed meanwhile)
    // a summary by outcome: "Done" alone read as success when every file had failed or the server was down.
    // Outcomes are per result: a DICOM or NIfTI file gives one per frame or slice
    const counts = {};
    mine.filter((c) => c.isConnected).forEach((c) => {
      const b = c.querySelector(".badge");
      if (!b) return;
      const k = b.classList.contains("pending") ? "pending" : b.textContent;
      counts[k] = (counts[k] || 0) + 1;
    });
    const order = ["ok", "uncertain", "rejected", "error"];
    const parts = order.filter((k) => counts[k]).map((k) => counts[k] + " " + (k === "error" ? "failed" : k));
    const failed = counts.error || 0;
    const shown = order.reduce((a, k) => a + (counts[k] || 0), 0);
    const results = shown === done ? "" : ", " + shown + " result(s)";
    setStatus("Finished " + done + " file(s)" + results + ": " + (parts.join(", ") || "no result") + ".",
              shown > 0 && failed === shown);
  }

  function addFiles(list) {
    const files = Array.from(list || []);
    if (!files.length) return;
    for (const f of files) {
      const card = newCard(f.name);
      setBadge(card, "pending", "analysing");
      queue.push([f, card]);
    }
    pump();
  }

  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });

  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault();
    zone.classList.add("dragover");
  }));
  ["dragleave", "dragend"].forEach((ev) => zone.addEventListener(ev, () => zone.classList.remove("dragover")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragover");
    if (e.dataTransfer) addFiles(e.dataTransfer.files);
  });
  // a file dropped beside the zone must not make the browser navigate away to it
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  clearBtn.addEventListener("click", () => {
    queue.length = 0;  // files not sent yet are dropped too: Clear means stop, not just hide
    cards.querySelectorAll("img").forEach((img) => {
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    });
    cards.textContent = "";
    clearBtn.hidden = true;
    setStatus("");
    input.focus();
  });
})();
