// The card form: Stripe's card field (Stripe.js, loaded from the address the settings name) and
// the payment's confirmation with the client_secret the page carries; 3-D Secure opens in
// Stripe's own window. The card number is typed into Stripe's frame and never reaches us. On
// success the application's page follows the payment; a refusal is said next to the field.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("pago-tarjeta");
  var without = document.getElementById("sin-js");
  if (!form) return;
  if (typeof window.Stripe !== "function") {
    document.getElementById("sin-js-texto").textContent = "No pudimos cargar el campo seguro de " +
      "pago de Stripe. Revisa tu conexión y vuelve a cargar la página, o paga en efectivo en OXXO.";
    return;
  }
  var MESSAGES = {
    card_declined: "Tu banco rechazó la tarjeta. No se hizo ningún cargo: prueba con otra " +
      "tarjeta o paga en efectivo en OXXO.",
    insufficient_funds: "La tarjeta no tiene fondos suficientes. No se hizo ningún cargo: " +
      "prueba con otra tarjeta o paga en efectivo en OXXO.",
    expired_card: "La tarjeta está vencida. Prueba con otra tarjeta.",
    incorrect_cvc: "El código de seguridad (CVC) no es correcto. Revísalo e inténtalo de nuevo.",
    incorrect_number: "El número de la tarjeta no es correcto. Revísalo e inténtalo de nuevo.",
    processing_error: "Hubo un error al procesar la tarjeta. No se hizo ningún cargo: inténtalo " +
      "de nuevo en unos minutos.",
    payment_intent_authentication_failure: "Tu banco no confirmó el pago en su verificación " +
      "(3-D Secure). No se hizo ningún cargo: inténtalo de nuevo o usa otra tarjeta."
  };
  var OTHER = "No pudimos procesar el pago. No se hizo ningún cargo: inténtalo de nuevo.";
  var notice = document.getElementById("tarjeta-aviso");
  var button = form.querySelector("button[type=submit]");
  var secret = form.dataset.secreto;
  var stripe = window.Stripe(form.dataset.clave, { locale: "es-419" });
  var card = null;

  function say(text, wrong) {
    notice.textContent = text;
    notice.classList.toggle("error", !!wrong);
  }

  function message(error) {
    // Stripe.js words the field's own checks in the page's locale already.
    if (error.type === "validation_error") return error.message;
    return MESSAGES[error.decline_code] || MESSAGES[error.code] ||
      (error.type === "card_error" ? MESSAGES.card_declined : OTHER);
  }

  function settle(result) {
    if (result.error) {
      say(message(result.error), true);
      button.disabled = false;
      return;
    }
    say("Pago aceptado. Un momento…", false);
    window.location.assign(form.dataset.volver + "?payment_intent=" +
      encodeURIComponent(result.paymentIntent.id));
  }

  if (form.dataset.accion === "confirmar") {
    card = stripe.elements().create("card", {
      hidePostalCode: true,
      style: { base: { fontSize: "16px", color: "#1b1b1b" }, invalid: { color: "#a4161a" } }
    });
    card.mount("#tarjeta");
    card.on("change", function (event) {
      if (event.error) say(event.error.message, true);
      else if (notice.classList.contains("error")) say("", false);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    say("Procesando tu pago…", false);
    var paying = card
      ? stripe.confirmCardPayment(secret, { payment_method: { card: card } })
      : stripe.handleNextAction({ clientSecret: secret });
    paying.then(settle, function () { settle({ error: {} }); });
  });

  without.hidden = true;
  form.hidden = false;
});
