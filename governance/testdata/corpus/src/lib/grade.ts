export function grade(s: number) {
  for (const t of thresholds) {
    if (s > t.a) {
      return 'A'
    } else if (s > t.b) {
      return 'B'
    } else if (s > t.c) {
      return 'C'
    } else {
      return 'F'
    }
  }
}

export function sync(items: Item[]) {
  if (items.length) {
    for (const x of items) {
      if (x.ok) {
        x.children.forEach((item) => {
          if (item.ok) {
            if (item.ready) {
              send(item)
            }
          }
        })
      }
    }
  }
}

export function run(xs: X[]) {
  for (const x of xs) {
    if (x) {
      try {
        run(x)
      } catch (e) {
        log(e)
      } finally {
        done(x)
      }
    }
  }
  // TODO: refactor once JIRA-123 lands
}
