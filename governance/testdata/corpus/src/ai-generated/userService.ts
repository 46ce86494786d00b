export function registerUser(data: User) {
  if (data) { // want AI-001
    if (data.email) {
      if (valid(data)) {
        if (!exists(data.email)) {
          return create(data)
        } else if (data.merge) {
          return merge(data)
        } else {
          return null
        }
      }
    }
  }
}
