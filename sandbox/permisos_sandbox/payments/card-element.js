// The card Element's iframe (the simulator's origin): number, expiry and CVC are typed here and
// never leave this origin except to the simulator's own API. The page that mounted it (its
// origin is in the query) gets change events and, when it asks, a PaymentMethod's id.
(function () {
  "use strict";
  var query = new URLSearchParams(window.location.search);
  var KEY = query.get("key") || "";
  var PARENT = query.get("origin") || "";
  var SPANISH = /^es/i.test(query.get("locale") || "");
  var style = {};
  try { style = JSON.parse(query.get("style") || "{}") || {}; } catch (e) { style = {}; }

  // Each text in Spanish and in English; the page's locale picks one.
  var TEXTS = {
    number: ["Número de tarjeta", "Card number"],
    expiry: ["MM / AA", "MM / YY"],
    cvc: ["CVC", "CVC"],
    numberLabel: ["Número de tarjeta", "Card number"],
    expiryLabel: ["Vencimiento (MM / AA)", "Expiration date (MM / YY)"],
    cvcLabel: ["Código de seguridad (CVC)", "Security code (CVC)"],
    incomplete_number: ["El número de tu tarjeta está incompleto.",
      "Your card number is incomplete."],
    invalid_number: ["El número de tu tarjeta no es válido.", "Your card number is invalid."],
    incomplete_expiry: ["La fecha de vencimiento de tu tarjeta está incompleta.",
      "Your card's expiration date is incomplete."],
    invalid_expiry_month: ["La fecha de vencimiento de tu tarjeta no es válida.",
      "Your card's expiration date is invalid."],
    invalid_expiry_year_past: ["El año de vencimiento de tu tarjeta ya pasó.",
      "Your card's expiration year is in the past."],
    invalid_expiry_month_past: ["La fecha de vencimiento de tu tarjeta ya pasó.",
      "Your card's expiration date is in the past."],
    incomplete_cvc: ["El código de seguridad de tu tarjeta está incompleto.",
      "Your card's security code is incomplete."],
    network: ["No pudimos conectarnos con Stripe. Revisa tu conexión e inténtalo de nuevo.",
      "We could not connect to Stripe. Check your connection and try again."]
  };
  var TEXT = {};
  Object.keys(TEXTS).forEach(function (k) { TEXT[k] = TEXTS[k][SPANISH ? 0 : 1]; });

  var number = document.getElementById("number");
  var expiry = document.getElementById("expiry");
  var cvc = document.getElementById("cvc");
  document.documentElement.lang = SPANISH ? "es" : "en";
  number.placeholder = TEXT.number; number.setAttribute("aria-label", TEXT.numberLabel);
  expiry.placeholder = TEXT.expiry; expiry.setAttribute("aria-label", TEXT.expiryLabel);
  cvc.placeholder = TEXT.cvc; cvc.setAttribute("aria-label", TEXT.cvcLabel);

  var base = style.base || {};
  if (base.fontSize) document.body.style.fontSize = base.fontSize;
  if (base.fontFamily) document.body.style.fontFamily = base.fontFamily;
  if (base.color) document.body.style.color = base.color;

  function tell(message) {
    if (PARENT) window.parent.postMessage(message, PARENT);
  }

  function digits(value) { return value.replace(/\D/g, ""); }

  function brand(n) {
    if (/^4/.test(n)) return "visa";
    if (/^(5[1-5]|2[2-7])/.test(n)) return "mastercard";
    if (/^3[47]/.test(n)) return "amex";
    return "unknown";
  }

  function luhn(n) {
    var sum = 0;
    for (var i = 0; i < n.length; i++) {
      var d = parseInt(n.charAt(n.length - 1 - i), 10);
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function numberLength(n) { return brand(n) === "amex" ? 15 : 16; }

  function formatNumber(n) {
    var groups = brand(n) === "amex" ? [4, 6, 5] : [4, 4, 4, 4, 3];
    var out = [], at = 0;
    for (var i = 0; i < groups.length && at < n.length; i++) {
      out.push(n.substr(at, groups[i])); at += groups[i];
    }
    return out.join(" ");
  }

  function formatExpiry(d) { return d.length > 2 ? d.slice(0, 2) + " / " + d.slice(2, 4) : d; }

  // Each field's state: the code of its error (complete fields have none), and whether the
  // error shows now (an incomplete field only once the buyer leaves it, as Stripe does).
  function check(final) {
    var n = digits(number.value), e = digits(expiry.value), c = digits(cvc.value);
    var errors = [];
    if (n.length < numberLength(n)) { if (final || n.length && document.activeElement !== number) errors.push([number, "incomplete_number"]); }
    else if (!luhn(n)) errors.push([number, "invalid_number"]);
    if (e.length < 4) { if (final || e.length && document.activeElement !== expiry) errors.push([expiry, "incomplete_expiry"]); }
    else {
      var month = parseInt(e.slice(0, 2), 10), year = 2000 + parseInt(e.slice(2, 4), 10);
      var now = new Date();
      if (month < 1 || month > 12) errors.push([expiry, "invalid_expiry_month"]);
      else if (year < now.getFullYear()) errors.push([expiry, "invalid_expiry_year_past"]);
      else if (year === now.getFullYear() && month < now.getMonth() + 1) errors.push([expiry, "invalid_expiry_month_past"]);
    }
    var cvcLength = brand(n) === "amex" ? 4 : 3;
    if (c.length < cvcLength && (final || c.length && document.activeElement !== cvc)) errors.push([cvc, "incomplete_cvc"]);
    [number, expiry, cvc].forEach(function (input) {
      var bad = errors.some(function (err) { return err[0] === input; });
      input.classList.toggle("invalid", bad);
      input.setAttribute("aria-invalid", bad ? "true" : "false");
    });
    var complete = n.length === numberLength(n) && luhn(n) && e.length === 4 && c.length >= cvcLength && !errors.length;
    var first = errors[0];
    return {
      empty: !n && !e && !c,
      complete: complete,
      brand: brand(n),
      error: first ? { type: "validation_error", code: first[1], message: TEXT[first[1]] } : undefined,
      data: { number: n, exp_month: e.slice(0, 2), exp_year: "20" + e.slice(2, 4), cvc: c }
    };
  }

  function changed() {
    var state = check(false);
    tell({ type: "stripe-element", event: "change", value: {
      elementType: "card", empty: state.empty, complete: state.complete, brand: state.brand,
      error: state.error
    } });
  }

  number.addEventListener("input", function () {
    var n = digits(number.value).slice(0, 16);
    number.value = formatNumber(n);
    if (n.length === numberLength(n) && luhn(n)) expiry.focus();
    changed();
  });
  expiry.addEventListener("input", function () {
    var e = digits(expiry.value).slice(0, 4);
    if (e.length === 1 && e > "1") e = "0" + e;
    expiry.value = formatExpiry(e);
    if (e.length === 4) cvc.focus();
    changed();
  });
  cvc.addEventListener("input", function () {
    cvc.value = digits(cvc.value).slice(0, 4);
    changed();
  });
  [number, expiry, cvc].forEach(function (input) {
    input.addEventListener("focus", function () { tell({ type: "stripe-element", event: "focus" }); });
    input.addEventListener("blur", function () {
      window.setTimeout(function () {
        if ([number, expiry, cvc].indexOf(document.activeElement) < 0) {
          tell({ type: "stripe-element", event: "blur" });
        }
        changed();
      }, 0);
    });
  });

  function createPaymentMethod(id, billing) {
    var state = check(true);
    if (state.error) {
      changed();
      tell({ type: "stripe-element", event: "result", id: id, error: state.error });
      return;
    }
    var body = new URLSearchParams({ type: "card", key: KEY });
    Object.keys(state.data).forEach(function (k) { body.append("card[" + k + "]", state.data[k]); });
    Object.keys(billing || {}).forEach(function (k) {
      if (typeof billing[k] === "string") body.append("billing_details[" + k + "]", billing[k]);
    });
    fetch("/v1/payment_methods", { method: "POST", body: body })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.error) tell({ type: "stripe-element", event: "result", id: id, error: answer.error });
        else tell({ type: "stripe-element", event: "result", id: id, paymentMethod: answer });
      })
      .catch(function () {
        tell({ type: "stripe-element", event: "result", id: id,
          error: { type: "api_connection_error", message: TEXT.network } });
      });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || event.origin !== PARENT) return;
    var data = event.data || {};
    if (data.type !== "stripe-element") return;
    if (data.action === "create") createPaymentMethod(data.id, data.billing_details);
    else if (data.action === "focus") number.focus();
    else if (data.action === "clear") { number.value = expiry.value = cvc.value = ""; changed(); }
  });

  tell({ type: "stripe-element", event: "ready", height: document.documentElement.scrollHeight });
})();
