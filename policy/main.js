// The pack's entry (package.json main), as the language host loads it with PulumiPolicy.yaml's
// `typescript: false`: sucrase's require hook strips the types of index.ts and of what it
// imports, as the program's nodeargs do (Pulumi.yaml). ts-node, which `typescript: true` loads,
// type-checked them on every preview: about 11 s a load here, against 3 s. `tsc --noEmit`
// checks the tree once (scripts/test.sh). The language host passes nodeargs to a pack as
// arguments, not to node, so the hook is required here.
require("sucrase/register/ts");
module.exports = require("./index.ts");
