// The add/edit connection dialog, generated from the JSON schemas of /api/types.
// Secret fields (writeOnly) are password inputs that are never prefilled: on edit, an empty
// one keeps the stored secret and its "clear" box sends null.

import { api, ApiError, seg } from "./api.js";
import { h, replaceChildren } from "./dom.js";

const DEFAULT_TYPE = "postgresql";

/** A schema property reduced to what the form needs. */
function describeProperty(name, prop, defs, required) {
  let p = resolveRef(prop, defs);
  let nullable = false;
  for (const key of ["anyOf", "oneOf"]) {
    if (Array.isArray(p[key])) {
      const options = p[key].map((o) => resolveRef(o, defs));
      const concrete = options.filter((o) => o.type !== "null");
      nullable = concrete.length < options.length;
      p = { ...(concrete[0] ?? {}), ...withoutKeys(p, [key]) };
    }
  }
  if (Array.isArray(p.allOf) && p.allOf.length === 1) {
    p = { ...resolveRef(p.allOf[0], defs), ...withoutKeys(p, ["allOf"]) };
  }
  let kind = p.type;
  if (Array.isArray(p.enum)) kind = "enum";
  const secret = p.writeOnly === true || p.format === "password";
  if (!["string", "integer", "number", "boolean", "enum"].includes(kind)) kind = "unsupported";
  return {
    name,
    kind,
    secret,
    nullable,
    required: required.has(name),
    title: p.title || name,
    description: p.description || "",
    default: p.default,
    enum: p.enum ?? [],
    minimum: p.minimum,
    maximum: p.maximum,
  };
}

function resolveRef(prop, defs) {
  if (!prop || typeof prop !== "object" || typeof prop.$ref !== "string") return prop ?? {};
  const target = defs[prop.$ref.split("/").pop()] ?? {};
  return { ...target, ...withoutKeys(prop, ["$ref"]) };
}

function withoutKeys(obj, keys) {
  const copy = { ...obj };
  for (const key of keys) delete copy[key];
  return copy;
}

/** The form fields of one connection type, in schema order. */
export function fieldsOf(type) {
  const schema = type.schema ?? {};
  const defs = schema.$defs ?? schema.definitions ?? {};
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, prop]) =>
    describeProperty(name, prop, defs, required),
  );
}

export class ConnectionDialog {
  /** `onSaved(connection)` runs after a successful create or update. */
  constructor(onSaved) {
    this.onSaved = onSaved;
    this.types = [];
    this.editing = null;
    this.dialog = document.getElementById("connection-dialog");
    this.form = document.getElementById("connection-form");
    this.title = document.getElementById("connection-dialog-title");
    this.nameInput = document.getElementById("connection-name");
    this.typeSelect = document.getElementById("type-select");
    this.fieldsBox = document.getElementById("connection-fields");
    this.errorBox = document.getElementById("connection-form-error");
    this.saveButton = document.getElementById("save-connection");
    this.typeSelect.addEventListener("change", () => this.renderFields());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    document.getElementById("cancel-connection").addEventListener("click", () => this.close());
    this.dialog.addEventListener("close", () => this.restoreFocus?.focus());
  }

  setTypes(types) {
    this.types = types;
    const chosen = this.typeSelect.value;
    replaceChildren(
      this.typeSelect,
      types.map((t) => h("option", { value: t.type }, t.title || t.type)),
    );
    // The last type chosen stays chosen; the first time, the most common server.
    const names = types.map((t) => t.type);
    this.typeSelect.value = names.includes(chosen) ? chosen : names.includes(DEFAULT_TYPE) ? DEFAULT_TYPE : (names[0] ?? "");
  }

  /** Open for a new connection (`connection` null) or to edit one. */
  open(connection = null) {
    this.editing = connection;
    this.restoreFocus = document.activeElement;
    this.title.textContent = connection ? `Edit ${connection.name}` : "Add a connection";
    this.saveButton.textContent = connection ? "Save changes" : "Add connection";
    this.nameInput.value = connection ? connection.name : "";
    this.nameInput.readOnly = Boolean(connection);
    this.typeSelect.disabled = Boolean(connection);
    if (connection) this.typeSelect.value = connection.type;
    this.showError(null);
    this.renderFields();
    this.dialog.showModal();
    (connection ? this.fieldsBox.querySelector("input, select") : this.nameInput)?.focus();
  }

  close() {
    this.dialog.close();
  }

  currentType() {
    return this.types.find((t) => t.type === this.typeSelect.value) ?? null;
  }

  renderFields() {
    const type = this.currentType();
    const fields = type ? fieldsOf(type) : [];
    const given = this.editing?.config ?? {};
    const secretsSet = this.editing?.secrets ?? {};
    const description = type?.description
      ? h("p", { class: "muted type-description" }, type.description)
      : null;
    replaceChildren(
      this.fieldsBox,
      description,
      fields.map((field) => this.renderField(field, given, secretsSet)),
    );
  }

  renderField(field, given, secretsSet) {
    const id = `f-${field.name}`;
    const hintId = `${id}-hint`;
    const hint = field.description ? h("small", { id: hintId, class: "hint" }, field.description) : null;
    const label = h("label", { for: id }, field.title, field.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
    const common = {
      id,
      name: field.name,
      "data-testid": `field-${field.name}`,
      "aria-describedby": hint ? hintId : null,
    };
    const has = Object.prototype.hasOwnProperty.call(given, field.name);
    const initial = has ? given[field.name] : field.default;
    if (field.kind === "unsupported") {
      return h("div", { class: "field" }, h("span", { class: "label" }, field.title),
        h("small", { class: "hint" }, "Set this field in the config file."));
    }
    if (field.kind === "boolean") {
      const box = h("input", { ...common, type: "checkbox", checked: Boolean(initial) });
      return h("div", { class: "field field-check" }, box, label, hint);
    }
    if (field.kind === "enum") {
      const select = h(
        "select",
        { ...common, required: field.required },
        field.required ? null : h("option", { value: "" }, "(default)"),
        field.enum.map((v) => h("option", { value: String(v) }, String(v))),
      );
      if (initial !== undefined && initial !== null) select.value = String(initial);
      return h("div", { class: "field" }, label, select, hint);
    }
    if (field.secret) {
      const stored = Boolean(secretsSet[field.name]);
      const input = h("input", {
        ...common,
        type: "password",
        autocomplete: "new-password",
        required: field.required && !this.editing,
        placeholder: stored ? "stored: leave empty to keep" : "",
      });
      const clear = stored
        ? h("label", { class: "clear-secret" },
            h("input", { type: "checkbox", "data-testid": `field-${field.name}-clear`, "data-clear-for": field.name }),
            " clear the stored value")
        : null;
      return h("div", { class: "field" }, label, input, clear, hint);
    }
    const numeric = field.kind === "integer" || field.kind === "number";
    const input = h("input", {
      ...common,
      type: numeric ? "number" : "text",
      step: field.kind === "integer" ? "1" : numeric ? "any" : null,
      min: field.minimum,
      max: field.maximum,
      inputmode: field.kind === "integer" ? "numeric" : null,
      autocomplete: "off",
      spellcheck: "false",
      required: field.required,
      value: initial === undefined || initial === null ? "" : String(initial),
    });
    return h("div", { class: "field" }, label, input, hint);
  }

  /** The request body, or null after marking the first bad field. */
  body() {
    const type = this.currentType();
    const config = {};
    for (const field of type ? fieldsOf(type) : []) {
      const input = this.fieldsBox.querySelector(`[name="${CSS.escape(field.name)}"]`);
      if (!input) continue;
      if (field.kind === "boolean") {
        config[field.name] = input.checked;
        continue;
      }
      const raw = input.value.trim();
      if (field.secret) {
        const clear = this.fieldsBox.querySelector(`[data-clear-for="${CSS.escape(field.name)}"]`);
        if (clear?.checked) config[field.name] = null;
        else if (input.value !== "") config[field.name] = input.value;
        continue;
      }
      if (raw === "") continue;
      if (field.kind === "integer" || field.kind === "number") {
        const n = Number(raw);
        if (!Number.isFinite(n) || (field.kind === "integer" && !Number.isInteger(n))) {
          this.showError({ message: `${field.title} must be a${field.kind === "integer" ? " whole" : ""} number`, field: field.name });
          return null;
        }
        config[field.name] = n;
      } else {
        config[field.name] = raw;
      }
    }
    return { name: this.nameInput.value.trim(), type: this.typeSelect.value, config };
  }

  async save() {
    const invalid = [...this.form.elements].find((el) => el.willValidate && !el.checkValidity());
    if (invalid) {
      const label = this.form.querySelector(`label[for="${CSS.escape(invalid.id)}"]`)?.textContent ?? invalid.name;
      this.showError({ message: `${label.replace(/\s*\*$/, "")}: ${invalid.validationMessage}`, field: invalid.name === "__name" ? "name" : invalid.name });
      return;
    }
    const body = this.body();
    if (!body) return;
    this.showError(null);
    this.saveButton.disabled = true;
    try {
      const saved = this.editing
        ? await api("PUT", `/api/connections/${seg(this.editing.name)}`, body)
        : await api("POST", "/api/connections", body);
      this.close();
      this.onSaved(saved);
    } catch (error) {
      this.showError(error instanceof ApiError ? error : { message: String(error) });
    } finally {
      this.saveButton.disabled = false;
    }
  }

  /** Show an API error in the dialog and mark the field it names. */
  showError(error) {
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!error) {
      this.errorBox.hidden = true;
      replaceChildren(this.errorBox);
      return;
    }
    replaceChildren(
      this.errorBox,
      h("strong", {}, error.message),
      error.fix ? h("span", { class: "fix" }, ` ${error.fix}`) : null,
    );
    this.errorBox.hidden = false;
    const fieldName = error.field ? String(error.field).split(/[.\s]/).pop() : null;
    const input = fieldName === "name"
      ? this.nameInput
      : fieldName
        ? this.form.querySelector(`[name="${CSS.escape(fieldName)}"]`)
        : null;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }
}
