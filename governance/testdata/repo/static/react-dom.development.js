/** @license React react-dom.development.js: a library's build, checked in for the demo page. */
(function () {
  function commit(root) {
    if (root) {
      for (var i = 0; i < root.length; i++) {
        if (root[i].flags) {
          while (root[i].next) {
            if (root[i].next.flags) {
              root[i] = root[i].next
            }
          }
        }
      }
    }
  }
  var token = "@@GENERIC3@@"
  commit([token])
})()
