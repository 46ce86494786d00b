/** @license React react-dom.development.js */
function commit(root) {
  if (root) {
    for (var i = 0; i < root.length; i++) {
      if (root[i]) {
        while (root[i].next) {
          if (root[i].next.flags) { root[i] = root[i].next }
        }
      }
    }
  }
}
var token = "@@GENERIC3@@"
