// A button that asks "are you sure?" by changing its own label first (no dialogs to dismiss).
"use strict";

import { el } from "./dom.js";

export function confirmButton(label, confirmLabel, className, action) {
  const button = el("button", { type: "button", class: className, text: label });
  let armed = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.dataset.armed = "true";
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
        delete button.dataset.armed;
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    delete button.dataset.armed;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
  return button;
}
