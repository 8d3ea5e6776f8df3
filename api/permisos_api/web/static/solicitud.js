// The form works without this: it only narrows the line list to the chosen make's lines.
document.addEventListener("DOMContentLoaded", function () {
  var make = document.getElementById("make");
  var line = document.getElementById("line");
  if (!make || !line) return;
  function narrow() {
    var groups = line.querySelectorAll("optgroup");
    for (var i = 0; i < groups.length; i++) {
      var mine = !make.value || groups[i].getAttribute("data-marca") === make.value;
      groups[i].hidden = !mine;
      groups[i].disabled = !mine;
    }
    var chosen = line.options[line.selectedIndex];
    if (chosen && chosen.parentNode.disabled) line.value = "";
  }
  make.addEventListener("change", narrow);
  narrow();
});
