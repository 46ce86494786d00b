def check(rows):
    for row in rows:  # want AI-001
        if row:
            while row.next:
                if row.bad:
                    return False
                elif row.skip:
                    continue
                else:
                    row = row.next
    return True


def flat(rows):
    for row in rows:
        if row.a:
            try:
                row.run()
            except ValueError:
                pass
        elif row.b:
            row.skip()
