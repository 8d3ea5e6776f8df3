// The voucher's "print" button: shown only where a script can print (the browser's own Print
// works everywhere, and the print stylesheet leaves only the voucher on the page).
document.addEventListener("DOMContentLoaded", function () {
  var buttons = document.querySelectorAll("[data-imprimir]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function () { window.print(); });
  }
});
