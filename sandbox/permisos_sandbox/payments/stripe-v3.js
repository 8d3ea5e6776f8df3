// A stand-in for Stripe.js v3, served by the payments simulator at /v3/: the subset a card page
// uses, with Stripe.js's names and result shapes. Stripe(publishableKey), stripe.elements(),
// elements.create("card") with mount/on/off/focus/clear/unmount/destroy,
// stripe.confirmCardPayment(clientSecret, {payment_method: {card: element}}),
// stripe.handleNextAction({clientSecret}) and stripe.retrievePaymentIntent(clientSecret); each
// resolves to {paymentIntent} or {error: {type, code, decline_code, message, ...}}.
// The API calls are Stripe's wire calls with the publishable key and the client_secret, to this
// script's own origin; the card number stays in the card iframe (see card-element.js).
(function () {
  "use strict";
  var ORIGIN = new URL(document.currentScript.src).origin;

  function IntegrationError(message) {
    var error = new Error(message);
    error.name = "IntegrationError";
    return error;
  }

  function spanish(locale) {
    var chosen = !locale || locale === "auto" ? navigator.language || "" : locale;
    return /^es/i.test(chosen);
  }

  function encode(fields, prefix, out) {
    Object.keys(fields).forEach(function (name) {
      var value = fields[name];
      var key = prefix ? prefix + "[" + name + "]" : name;
      if (value === null || value === undefined) return;
      if (typeof value === "object") encode(value, key, out);
      else out.append(key, String(value));
    });
    return out;
  }

  // A form-encoded request with the key as a parameter, as Stripe.js sends them (no preflight).
  function call(method, path, params) {
    var body = encode(params, "", new URLSearchParams());
    var url = ORIGIN + path + (method === "GET" ? "?" + body.toString() : "");
    return fetch(url, method === "GET" ? { method: "GET" } : { method: method, body: body })
      .then(function (r) { return r.json(); });
  }

  function connectionError(es) {
    return { error: { type: "api_connection_error", message: es
      ? "No pudimos conectarnos con Stripe. Revisa tu conexión e inténtalo de nuevo."
      : "We could not connect to Stripe. Check your connection and try again." } };
  }

  function intentId(clientSecret, method) {
    var match = /^(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+$/.exec(clientSecret || "");
    if (!match) {
      throw IntegrationError("Invalid value for " + method + " intent secret: value should be " +
        "a client_secret string. You specified: " + clientSecret + ".");
    }
    return match[1];
  }

  // ---- the card Element ---------------------------------------------------------------------

  var requests = 0;

  function CardElement(stripe, options) {
    this._stripe = stripe;
    this._options = options || {};
    this._handlers = {};
    this._pending = {};
    this._frame = null;
    this._box = null;
    this._listener = null;
  }

  CardElement.prototype.mount = function (target) {
    var box = typeof target === "string" ? document.querySelector(target) : target;
    if (!box) throw IntegrationError("The selector you specified (" + target + ") applies to no DOM elements that are currently on the page.");
    if (this._frame) throw IntegrationError("This Element is already mounted.");
    var frame = document.createElement("iframe");
    var query = new URLSearchParams({
      key: this._stripe._key,
      origin: window.location.origin,
      locale: this._stripe._spanish ? "es" : "en",
      style: JSON.stringify(this._options.style || {})
    });
    frame.src = ORIGIN + "/v3/elements/card?" + query.toString();
    frame.name = "__privateStripeFrame" + ++requests;
    frame.title = this._stripe._spanish
      ? "Campo seguro para los datos de la tarjeta"
      : "Secure card payment input frame";
    frame.setAttribute("frameborder", "0");
    frame.setAttribute("scrolling", "no");
    frame.setAttribute("allowtransparency", "true");
    frame.style.border = "none";
    frame.style.width = "100%";
    frame.style.height = "2.6em";
    frame.style.display = "block";
    frame.style.background = "transparent";
    box.classList.add("StripeElement", "StripeElement--empty");
    box.appendChild(frame);
    this._frame = frame;
    this._box = box;
    var self = this;
    this._listener = function (event) { self._receive(event); };
    window.addEventListener("message", this._listener);
  };

  CardElement.prototype._receive = function (event) {
    if (event.origin !== ORIGIN || !this._frame || event.source !== this._frame.contentWindow) return;
    var data = event.data || {};
    if (data.type !== "stripe-element") return;
    var box = this._box;
    if (data.event === "ready") {
      if (data.height) this._frame.style.height = data.height + "px";
      this._emit("ready", { elementType: "card" });
    } else if (data.event === "change") {
      var value = data.value;
      box.classList.toggle("StripeElement--empty", value.empty);
      box.classList.toggle("StripeElement--complete", value.complete);
      box.classList.toggle("StripeElement--invalid", !!value.error);
      this._emit("change", value);
    } else if (data.event === "focus" || data.event === "blur") {
      box.classList.toggle("StripeElement--focus", data.event === "focus");
      this._emit(data.event, { elementType: "card" });
    } else if (data.event === "result" && this._pending[data.id]) {
      var resolve = this._pending[data.id];
      delete this._pending[data.id];
      resolve(data.error ? { error: data.error } : { paymentMethod: data.paymentMethod });
    }
  };

  CardElement.prototype._emit = function (name, value) {
    (this._handlers[name] || []).slice().forEach(function (handler) { handler(value); });
  };

  CardElement.prototype._post = function (message) {
    if (!this._frame) throw IntegrationError("The card Element is not mounted.");
    message.type = "stripe-element";
    this._frame.contentWindow.postMessage(message, ORIGIN);
  };

  // Asks the iframe to create the PaymentMethod; only its id (and brand, last4) comes back.
  CardElement.prototype._createPaymentMethod = function (billingDetails) {
    var self = this;
    var id = ++requests;
    return new Promise(function (resolve) {
      self._pending[id] = resolve;
      self._post({ action: "create", id: id, billing_details: billingDetails || null });
    });
  };

  CardElement.prototype.on = function (name, handler) {
    (this._handlers[name] = this._handlers[name] || []).push(handler);
    return this;
  };
  CardElement.prototype.off = function (name, handler) {
    this._handlers[name] = (this._handlers[name] || []).filter(function (h) {
      return handler && h !== handler;
    });
    return this;
  };
  CardElement.prototype.focus = function () { this._post({ action: "focus" }); };
  CardElement.prototype.clear = function () { this._post({ action: "clear" }); };
  CardElement.prototype.unmount = function () {
    if (!this._frame) return;
    window.removeEventListener("message", this._listener);
    this._frame.parentNode.removeChild(this._frame);
    this._box.classList.remove("StripeElement", "StripeElement--empty", "StripeElement--complete",
      "StripeElement--invalid", "StripeElement--focus");
    this._frame = this._box = null;
  };
  CardElement.prototype.destroy = CardElement.prototype.unmount;

  function Elements(stripe) { this._stripe = stripe; this._card = null; }

  Elements.prototype.create = function (type, options) {
    if (type !== "card") {
      throw IntegrationError("The payments simulator's Stripe.js knows only the card Element, " +
        "not " + type + ".");
    }
    if (this._card) throw IntegrationError("Can only create one Element of type card.");
    this._card = new CardElement(this._stripe, options);
    return this._card;
  };
  Elements.prototype.getElement = function (type) { return type === "card" ? this._card : null; };

  // ---- 3-D Secure: the bank's page in a modal, as Stripe.js shows it ------------------------

  function challenge(url, es) {
    return new Promise(function (resolve) {
      var shade = document.createElement("div");
      shade.setAttribute("role", "dialog");
      shade.setAttribute("aria-modal", "true");
      shade.setAttribute("aria-label", es ? "Verificación de tu banco" : "Bank authentication");
      var s = shade.style;
      s.position = "fixed"; s.top = s.left = s.right = s.bottom = "0"; s.zIndex = "2147483647";
      s.background = "rgba(0, 0, 0, 0.6)"; s.display = "flex";
      s.alignItems = "center"; s.justifyContent = "center";
      var frame = document.createElement("iframe");
      frame.src = url;
      frame.name = "__privateStripeFrame" + ++requests;
      frame.title = es ? "Verificación 3-D Secure de tu banco" : "3D Secure authentication";
      frame.setAttribute("frameborder", "0");
      var f = frame.style;
      f.width = "min(500px, 100vw)"; f.height = "min(600px, 100vh)";
      f.border = "none"; f.background = "#fff";
      shade.appendChild(frame);
      document.body.appendChild(shade);
      frame.focus();
      var challengeOrigin = new URL(url, window.location.href).origin;
      function done(event) {
        if (event.origin !== challengeOrigin || event.source !== frame.contentWindow) return;
        if (!event.data || event.data.type !== "stripe-3ds-result") return;
        window.removeEventListener("message", done);
        document.body.removeChild(shade);
        resolve();
      }
      window.addEventListener("message", done);
    });
  }

  // ---- Stripe --------------------------------------------------------------------------------

  function Stripe(key, options) {
    if (!(this instanceof Stripe)) return new Stripe(key, options);
    if (typeof key !== "string" || !key) {
      throw IntegrationError("Please call Stripe() with your publishable key. You used an empty string.");
    }
    if (key.indexOf("sk_") === 0) {
      throw IntegrationError("You should not use your secret key with Stripe.js. Please pass a " +
        "publishable key instead.");
    }
    this._key = key;
    this._spanish = spanish(options && options.locale);
  }

  Stripe.prototype.elements = function (options) {
    if (options && options.locale) this._spanish = spanish(options.locale);
    return new Elements(this);
  };

  Stripe.prototype.retrievePaymentIntent = function (clientSecret) {
    var id = intentId(clientSecret, "retrievePaymentIntent");
    var es = this._spanish;
    return call("GET", "/v1/payment_intents/" + id, { key: this._key, client_secret: clientSecret })
      .then(function (answer) { return answer.error ? { error: answer.error } : { paymentIntent: answer }; })
      .catch(function () { return connectionError(es); });
  };

  // What a PaymentIntent's state means to the caller once no more action is possible here.
  function outcome(intent) {
    if (intent.status === "requires_payment_method" && intent.last_payment_error) {
      var error = {};
      Object.keys(intent.last_payment_error).forEach(function (k) { error[k] = intent.last_payment_error[k]; });
      error.payment_intent = intent;
      return { error: error };
    }
    return { paymentIntent: intent };
  }

  Stripe.prototype._act = function (intent, clientSecret) {
    var action = intent.next_action || {};
    if (action.type === "redirect_to_url") {
      window.location.assign(action.redirect_to_url.url);
      return new Promise(function () {});  // the page goes away, as with Stripe.js
    }
    if (action.type !== "use_stripe_sdk") return Promise.resolve({ paymentIntent: intent });
    var self = this;
    return challenge(action.use_stripe_sdk.stripe_js, this._spanish).then(function () {
      return self.retrievePaymentIntent(clientSecret);
    }).then(function (result) { return result.error ? result : outcome(result.paymentIntent); });
  };

  Stripe.prototype.confirmCardPayment = function (clientSecret, data, options) {
    var id = intentId(clientSecret, "confirmCardPayment");
    var self = this;
    var method = data && data.payment_method;
    var made;
    if (method && method.card instanceof CardElement) {
      made = method.card._createPaymentMethod(method.billing_details);
    } else {
      made = Promise.resolve({ paymentMethod: typeof method === "string" ? { id: method } : null });
    }
    return made.then(function (result) {
      if (result.error) return result;
      var params = { key: self._key, client_secret: clientSecret };
      if (result.paymentMethod) params.payment_method = result.paymentMethod.id;
      if (data && data.return_url) params.return_url = data.return_url;
      return call("POST", "/v1/payment_intents/" + id + "/confirm", params).then(function (answer) {
        if (answer.error) return { error: answer.error };
        if (answer.status === "requires_action" && !(options && options.handleActions === false)) {
          return self._act(answer, clientSecret);
        }
        return { paymentIntent: answer };
      });
    }).catch(function () { return connectionError(self._spanish); });
  };

  Stripe.prototype.handleNextAction = function (args) {
    var clientSecret = args && args.clientSecret;
    intentId(clientSecret, "handleNextAction");
    var self = this;
    return this.retrievePaymentIntent(clientSecret).then(function (result) {
      if (result.error) return result;
      if (result.paymentIntent.status !== "requires_action") return outcome(result.paymentIntent);
      return self._act(result.paymentIntent, clientSecret);
    });
  };

  window.Stripe = Stripe;
})();
