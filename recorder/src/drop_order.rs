//! Drop order as a type, for values that hold raw handles into other values (GPU memory
//! mappings, CUDA streams of a context): Rust drops struct fields in declaration order, which a
//! comment can ask for but nothing enforces; [`DropsBefore`] enforces it.

/// A value (`user`) that reads, through raw handles, what another value (`owner`) owns. The
/// user is always dropped first: by this type's `Drop`, which runs before the fields' own, or
/// by [`DropsBefore::finish_user`].
pub(crate) struct DropsBefore<U, O> {
    /// `Some` for the whole life of the value; taken only by `drop` and `finish_user`.
    user: Option<U>,
    owner: O,
}

const ALIVE: &str = "DropsBefore's user is present until it is dropped";

impl<U, O> DropsBefore<U, O> {
    pub fn new(user: U, owner: O) -> Self {
        DropsBefore {
            user: Some(user),
            owner,
        }
    }

    /// Makes the user from its owner; on error the owner is dropped.
    pub fn try_new<E>(owner: O, make: impl FnOnce(&O) -> Result<U, E>) -> Result<Self, E> {
        let user = make(&owner)?;
        Ok(DropsBefore {
            user: Some(user),
            owner,
        })
    }

    pub fn user(&self) -> &U {
        self.user.as_ref().expect(ALIVE)
    }

    pub fn owner(&self) -> &O {
        &self.owner
    }

    /// The user, mutably (its owner is not needed).
    pub fn user_mut(&mut self) -> &mut U {
        self.user.as_mut().expect(ALIVE)
    }

    /// The owner may grow (retired converters join the list); it is still dropped last.
    pub fn owner_mut(&mut self) -> &mut O {
        &mut self.owner
    }

    /// The user, mutably, next to what it reads.
    pub fn parts_mut(&mut self) -> (&mut U, &O) {
        (self.user.as_mut().expect(ALIVE), &self.owner)
    }

    /// Consumes the user by value (e.g. to finalize it), then drops the owner.
    pub fn finish_user<R>(mut self, f: impl FnOnce(U) -> R) -> R {
        let user = self.user.take().expect(ALIVE);
        f(user)
        // `self` (now only the owner) is dropped here, after the user.
    }
}

impl<U, O> Drop for DropsBefore<U, O> {
    fn drop(&mut self) {
        // Runs before the fields are dropped: the user goes first, then the owner.
        drop(self.user.take());
    }
}
