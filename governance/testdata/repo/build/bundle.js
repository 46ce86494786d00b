// gitignored: never scanned
const key = "@@STRIPE_LIVE@@";
