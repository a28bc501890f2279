// The keyboard help overlay: "?" opens it, Escape (or Close, or a click outside) closes it and
// gives the focus back to where it was.
"use strict";

import { $ } from "./dom.js";

export class KeyHelp {
  constructor() {
    this.root = $("help");
    this.closeButton = $("help-close");
    this.returnTo = null;
    $("help-button").addEventListener("click", () => this.open());
    this.closeButton.addEventListener("click", () => this.close());
    this.root.addEventListener("click", (event) => {
      if (event.target === this.root) this.close();
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  open() {
    if (this.isOpen) return;
    this.returnTo = document.activeElement;
    this.root.hidden = false;
    this.closeButton.focus();
  }

  close() {
    if (!this.isOpen) return;
    this.root.hidden = true;
    if (this.returnTo && this.returnTo.focus) this.returnTo.focus({ preventScroll: true });
    this.returnTo = null;
  }

  /** Keys while the overlay is open, and "?" to open it. Returns true when the key was used. */
  handleKey(event) {
    if (this.isOpen) {
      if (event.key === "Escape" || event.key === "?") {
        this.close();
        return true;
      }
      // Tab stays on the only control; other keys do nothing behind the overlay.
      return event.key !== "Tab" || (this.closeButton.focus(), true);
    }
    if (event.key === "?" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      this.open();
      return true;
    }
    return false;
  }
}
